"""Pictures of volumes and videos: frame panels (PNG) and side-by-side animations (GIF)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import animation  # noqa: E402

__all__ = ["atomic_savefig", "save_frame_panel", "save_midplane_panel", "save_side_by_side_gif", "to_display"]


def to_display(volume: torch.Tensor | np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """``(C, D, H, W)`` with C in {1, 3} -> ``(D, H, W)`` grey or ``(D, H, W, 3)`` RGB floats in [0, 1]."""
    v = np.asarray(volume.detach().float().cpu() if isinstance(volume, torch.Tensor) else volume, dtype=np.float32)
    if v.ndim != 4 or v.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, D, H, W) volume with 1 or 3 channels, got shape {v.shape}.")
    lo, hi = value_range
    v = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
    return v[0] if v.shape[0] == 1 else np.moveaxis(v, 0, -1)


def atomic_savefig(fig, path: Path, **kwargs) -> None:
    """Save a matplotlib figure under a temporary name, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part{path.suffix}")
    fig.savefig(tmp, **kwargs)
    tmp.replace(path)


def save_frame_panel(rows: Mapping[str, torch.Tensor | np.ndarray], path: str | Path, num_frames: int = 8,
                     value_range: tuple[float, float] = (-1, 1), title: str | None = None) -> Path:
    """Save a PNG grid: one row per named volume, ``num_frames`` evenly spaced frames as columns."""
    path = Path(path)
    images = {name: to_display(v, value_range) for name, v in rows.items()}
    depth = min(len(v) for v in images.values())
    frames = np.unique(np.linspace(0, depth - 1, min(num_frames, depth)).round().astype(int))
    fig, axes = plt.subplots(len(images), len(frames), figsize=(1.3 * len(frames) + 1, 1.4 * len(images)),
                             squeeze=False)
    for r, (name, vol) in enumerate(images.items()):
        for c, t in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(vol[t], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={t}", fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)
    return path


def save_midplane_panel(rows: Mapping[str, torch.Tensor | np.ndarray], path: str | Path,
                        value_ranges: Mapping[str, tuple[float, float]], spacing: tuple[float, float, float] = (1, 1, 1),
                        title: str | None = None) -> Path:
    """Save a PNG of the axial, coronal and sagittal mid-planes of each named ``(1, slices, x, y)`` volume.

    Rows are the volumes, each shown in its own intensity window ``value_ranges[name]`` (e.g. MR on [-1, 1],
    CT in HU); ``spacing`` (slice, x, y in mm) keeps the anatomy's proportions. Superior and anterior are up.
    """
    path = Path(path)
    names = list(rows)
    fig, axes = plt.subplots(len(names), 3, figsize=(7.5, 2.5 * len(names)), squeeze=False)
    dz, dx, dy = spacing
    for r, name in enumerate(names):
        vol = to_display(rows[name], value_ranges[name])
        nz, nx, ny = vol.shape
        planes = {"axial": (vol[nz // 2].T, dy / dx), "coronal": (vol[:, :, ny // 2], dz / dx),
                  "sagittal": (vol[:, nx // 2, :], dz / dy)}
        for c, (plane, (image, aspect)) in enumerate(planes.items()):
            ax = axes[r, c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, origin="lower", aspect=aspect)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(plane, fontsize=9)
        lo, hi = value_ranges[name]
        axes[r, 0].set_ylabel(f"{name}\n[{lo:g}, {hi:g}]", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)
    return path


def save_side_by_side_gif(rows: Mapping[str, torch.Tensor | np.ndarray], path: str | Path,
                          value_range: tuple[float, float] = (-1, 1), fps: int = 6) -> Path:
    """Save an animated GIF that plays the named volumes side by side, frame by frame along depth/time."""
    path = Path(path)
    images = {name: to_display(v, value_range) for name, v in rows.items()}
    depth = min(len(v) for v in images.values())
    fig, axes = plt.subplots(1, len(images), figsize=(1.8 * len(images), 2.0), squeeze=False)
    artists = []
    for ax, (name, vol) in zip(axes[0], images.items()):
        artists.append(ax.imshow(vol[0], cmap="gray", vmin=0, vmax=1))
        ax.set_title(name, fontsize=8)
        ax.axis("off")

    def update(t: int):
        for artist, vol in zip(artists, images.values()):
            artist.set_data(vol[t])
        return artists

    anim = animation.FuncAnimation(fig, update, frames=depth, blit=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part.gif")
    anim.save(tmp, writer=animation.PillowWriter(fps=fps))
    tmp.replace(path)
    plt.close(fig)
    return path
