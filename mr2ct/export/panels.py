"""Matplotlib pictures of volumes and videos: frame panels (PNG) and side-by-side animations (GIF).

Figures are drawn on :class:`matplotlib.figure.Figure` directly (no ``pyplot``: no global state, no backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from matplotlib import animation
from matplotlib.figure import Figure

from mr2ct.export.windows import to_display
from mr2ct.io.atomic import atomic_file

__all__ = ["atomic_savefig", "save_frame_panel", "save_side_by_side_gif"]


def atomic_savefig(fig: Figure, path: Path, **kwargs) -> None:
    """``fig.savefig`` through :func:`~mr2ct.io.atomic.atomic_file` (a temporary name, then renamed to ``path``)."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, **kwargs)


def save_frame_panel(
    rows: Mapping[str, torch.Tensor | np.ndarray],
    path: str | Path,
    num_frames: int = 8,
    value_range: tuple[float, float] = (-1, 1),
    title: str | None = None,
) -> Path:
    """Save a PNG grid: one row per named volume, ``num_frames`` evenly spaced frames as columns."""
    path = Path(path)
    images = {name: to_display(v, value_range) for name, v in rows.items()}
    depth = min(len(v) for v in images.values())
    frames = np.unique(np.linspace(0, depth - 1, min(num_frames, depth)).round().astype(int))
    fig = Figure(figsize=(1.3 * len(frames) + 1, 1.4 * len(images)))
    axes = fig.subplots(len(images), len(frames), squeeze=False)
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
    return path


def save_side_by_side_gif(
    rows: Mapping[str, torch.Tensor | np.ndarray],
    path: str | Path,
    value_range: tuple[float, float] = (-1, 1),
    fps: int = 6,
) -> Path:
    """Save an animated GIF that plays the named volumes side by side, frame by frame along depth/time."""
    path = Path(path)
    images = {name: to_display(v, value_range) for name, v in rows.items()}
    depth = min(len(v) for v in images.values())
    fig = Figure(figsize=(1.8 * len(images), 2.0))
    axes = fig.subplots(1, len(images), squeeze=False)
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
    with atomic_file(path) as tmp:
        anim.save(tmp, writer=animation.PillowWriter(fps=fps))
    return path
