"""Volumetric MNIST (the paper, section 5.1): digit volumes of changing erosion, "spherical" and "sandglass".

Every slice ``t`` of a volume is the digit eroded by a level ``e(t)``:

- domain A, *sandglass*: full digit at both ends, thinnest in the middle (decay-then-rise);
- domain B, *spherical*: thin digit at both ends, full in the middle slices (rise-then-decay).

The same digit in both domains is a ground-truth pair. Digits are split 70/30 into train and test with a
seeded permutation; the training digits are split again into two disjoint halves, one per domain, so
training is unpaired (no digit appears in both domains), while every test digit appears in both.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mr2ct.data.digits import load_digits

__all__ = ["VolumetricMNISTConfig", "build_volumetric_mnist", "erosion_profile", "erosion_stack", "render_volumes"]

logger = logging.getLogger(__name__)

# Erosion happens at 3x the MNIST resolution (84x84, the paper's frame size) where strokes are ~8 px wide,
# so levels 0..MAX_EROSION thin a stroke gradually without erasing it; frames are then resized.
EROSION_RESOLUTION = 84
MAX_EROSION = 3.0
_VERSION = 1


def erosion_profile(depth: int, kind: str, max_level: float = MAX_EROSION) -> np.ndarray:
    """Erosion level of each of ``depth`` slices: ``kind`` "sandglass" (thin middle) or "spherical" (thin ends)."""
    if depth < 1:
        raise ValueError(f"depth must be positive, got {depth}.")
    bump = np.sin(np.pi * np.arange(depth) / max(depth - 1, 1))  # 0 at both ends, 1 in the middle
    if kind == "sandglass":
        return max_level * bump
    if kind == "spherical":
        return max_level * (1.0 - bump)
    raise ValueError(f"unknown volume kind {kind!r}; choose 'sandglass' or 'spherical'.")


def erosion_stack(digits: torch.Tensor, levels: int) -> torch.Tensor:
    """``(N, 28, 28)`` digits in [0, 1] -> ``(N, levels, 84, 84)``: grey erosion by a 3x3 square, 0..levels-1 times."""
    x = F.interpolate(digits[:, None].float(), size=(EROSION_RESOLUTION,) * 2, mode="bilinear", align_corners=False)
    stack = [x]
    for _ in range(levels - 1):
        x = -F.max_pool2d(-x, kernel_size=3, stride=1, padding=1)
        stack.append(x)
    return torch.cat(stack, dim=1)


def render_volumes(digits: np.ndarray, kind: str, depth: int, size: Sequence[int]) -> np.ndarray:
    """Render digits ``(N, 28, 28)`` uint8 as volumes ``(N, 1, depth, H, W)`` uint8 of the given ``kind``.

    Fractional erosion levels blend the two nearest integer levels, so intensity changes smoothly over depth.
    """
    profile = torch.as_tensor(erosion_profile(depth, kind), dtype=torch.float32)
    lo = profile.floor().long()
    frac = (profile - lo)[None, :, None, None]
    stack = erosion_stack(torch.as_tensor(digits) / 255.0, int(MAX_EROSION) + 2)
    vol = (1 - frac) * stack[:, lo] + frac * stack[:, lo + 1]  # (N, depth, 84, 84)
    vol = F.interpolate(vol, size=tuple(size), mode="area") if tuple(size) != vol.shape[-2:] else vol
    return (vol.clamp(0, 1) * 255).round().to(torch.uint8).numpy()[:, None]


class VolumetricMNISTConfig:
    """Settings that determine a built data set (they name its cache folder)."""

    def __init__(self, depth: int = 30, size: Sequence[int] = (84, 84), num_digits: int | None = None,
                 seed: int = 0, train_fraction: float = 0.7, images_idx: str | None = None,
                 labels_idx: str | None = None):
        size = tuple(int(s) for s in size)
        if depth < 1 or len(size) != 2 or min(size) < 1:
            raise ValueError(f"depth and size must be positive (size is (H, W)), got depth={depth}, size={size}.")
        if num_digits is not None and num_digits < 4:
            raise ValueError(f"num_digits must be at least 4, got {num_digits}.")
        if not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
        self.depth, self.size, self.num_digits, self.seed = depth, size, num_digits, seed
        self.train_fraction, self.images_idx, self.labels_idx = train_fraction, images_idx, labels_idx

    def as_dict(self) -> dict:
        return {"version": _VERSION, "depth": self.depth, "size": list(self.size), "num_digits": self.num_digits,
                "seed": self.seed, "train_fraction": self.train_fraction,
                "images_idx": str(self.images_idx) if self.images_idx else None}

    def folder_name(self) -> str:
        n = self.num_digits if self.num_digits is not None else "all"
        src = "idx" if self.images_idx else "mlxtend5k"
        return f"vmnist_{src}_d{self.depth}_{self.size[0]}x{self.size[1]}_n{n}_seed{self.seed}"


def _write_array(path: Path, array_chunks, shape: tuple[int, ...]) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    start = 0
    for chunk in array_chunks:
        out[start: start + len(chunk)] = chunk
        start += len(chunk)
    out.flush()
    del out


def build_volumetric_mnist(root_dir: str | Path, config: VolumetricMNISTConfig | None = None,
                           chunk: int = 256) -> Path:
    """Build (once) and cache the data set under ``root_dir``; return its folder.

    The folder holds ``train_A.npy``, ``train_B.npy`` (unpaired, disjoint digits), ``test_A.npy``,
    ``test_B.npy`` (paired: row ``i`` of both is the same digit), ``*_labels.npy`` and ``meta.json``. Arrays
    are ``(N, 1, D, H, W)`` uint8 in [0, 255]. The folder is written under a temporary name and renamed when
    complete, so an interrupted build never leaves a partial data set behind. Deterministic for a seed.
    """
    config = config or VolumetricMNISTConfig()
    folder = Path(root_dir) / config.folder_name()
    if (folder / "meta.json").is_file():
        return folder
    images, labels = load_digits(config.images_idx, config.labels_idx)
    order = np.random.default_rng(config.seed).permutation(len(images))
    if config.num_digits is not None:
        if config.num_digits > len(images):
            raise ValueError(f"num_digits={config.num_digits} but the digit source has only {len(images)} digits.")
        order = order[: config.num_digits]
    n_train = int(round(config.train_fraction * len(order)))
    train, test = order[:n_train], order[n_train:]
    half = len(train) // 2
    splits = {"train_A": (train[:half], "sandglass"), "train_B": (train[half:], "spherical"),
              "test_A": (test, "sandglass"), "test_B": (test, "spherical")}

    Path(root_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root_dir))
    try:
        total = sum(len(idx) for idx, _ in splits.values())
        with tqdm(total=total, desc=f"building {folder.name}", unit="vol") as bar:
            for name, (idx, kind) in splits.items():
                def chunks(idx=idx, kind=kind):
                    for s in range(0, len(idx), chunk):
                        vols = render_volumes(images[idx[s: s + chunk]], kind, config.depth, config.size)
                        bar.update(len(vols))
                        yield vols
                _write_array(tmp / f"{name}.npy", chunks(), (len(idx), 1, config.depth, *config.size))
                np.save(tmp / f"{name}_labels.npy", labels[idx])
        meta = {**config.as_dict(), "counts": {k: int(len(v[0])) for k, v in splits.items()},
                "kinds": {k: v[1] for k, v in splits.items()}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same build first
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(f"built volumetric MNIST at {folder}")
    return folder
