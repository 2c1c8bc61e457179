"""Datasets that pair domains: unpaired for training, paired (ground truth) for evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import Dataset

__all__ = ["UnpairedDataset", "load_split", "paired_items"]


def load_split(folder: str | Path, split: str, domain: str) -> np.ndarray:
    """Memory-map ``<folder>/<split>_<domain>.npy`` (e.g. ``train_A``) of a built data set."""
    path = Path(folder) / f"{split}_{domain}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; was the data set built (see the bundle's dataset_dir)?")
    return np.load(path, mmap_mode="r")


def paired_items(data_a: Sequence, data_b: Sequence, limit: int | None = None,
                 keys: tuple[str, str] = ("image", "label")) -> list[dict]:
    """``[{"image": a[i], "label": b[i], "index": i}]`` for ground-truth pairs (row ``i`` of both is one case)."""
    if len(data_a) != len(data_b):
        raise ValueError(f"paired data need equal lengths, got {len(data_a)} and {len(data_b)}.")
    n = len(data_a) if limit is None else min(limit, len(data_a))
    return [{keys[0]: data_a[i], keys[1]: data_b[i], "index": i} for i in range(n)]


class UnpairedDataset(Dataset):
    """Unpaired samples of two domains: item ``i`` is ``{"A": data_a[i % len_a], "B": data_b[random]}``.

    As in CycleGAN, domain A is walked in order (shuffle it with the loader) and domain B is drawn at random
    for every item, so A/B pairings change from epoch to epoch. B indices come from torch's RNG, which MONAI's
    ``set_determinism`` and the loader's per-worker seeding make reproducible.

    Args:
        data_a: sequence of domain-A samples (arrays or dicts of file names).
        data_b: sequence of domain-B samples.
        transform: MONAI dictionary transform applied to ``{"A": ..., "B": ...}``.
        keys: names of the two domains in the returned dict.
    """

    def __init__(self, data_a: Sequence, data_b: Sequence, transform: Callable | None = None,
                 keys: tuple[str, str] = ("A", "B")):
        if len(data_a) == 0 or len(data_b) == 0:
            raise ValueError(f"both domains need samples, got {len(data_a)} (A) and {len(data_b)} (B).")
        super().__init__(data=data_a, transform=transform)
        self.data_b = data_b
        self.keys = keys

    def __len__(self) -> int:
        return max(len(self.data), len(self.data_b))

    def _transform(self, index: int):
        j = int(torch.randint(len(self.data_b), ()))
        item = {self.keys[0]: self.data[index % len(self.data)], self.keys[1]: self.data_b[j]}
        item = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in item.items()}  # copy out of memory maps
        return self.transform(item) if self.transform is not None else item
