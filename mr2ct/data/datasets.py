"""Datasets that pair domains: unpaired for training, paired (ground truth) for evaluation."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import Dataset

__all__ = ["SkipFailuresDataset", "UnpairedDataset", "load_split", "paired_items"]


def load_split(folder: str | Path, split: str, domain: str) -> np.ndarray:
    """Memory-map ``<folder>/<split>_<domain>.npy`` (e.g. ``train_A``) of a built data set."""
    path = Path(folder) / f"{split}_{domain}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; was the data set built (see the bundle's dataset_dir)?")
    return np.load(path, mmap_mode="r")


def paired_items(
    data_a: Sequence, data_b: Sequence, limit: int | None = None, keys: tuple[str, str] = ("image", "label")
) -> list[dict]:
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

    Samples that are dicts (e.g. the items of a MONAI ``CacheDataset`` of ``{"A": path}`` already preprocessed)
    are merged into one item instead of being nested under the keys.

    Args:
        data_a: sequence of domain-A samples (arrays, file names, or dicts such as a MONAI dataset's items).
        data_b: sequence of domain-B samples.
        transform: MONAI dictionary transform applied to ``{"A": ..., "B": ...}``.
        keys: names of the two domains in the returned dict.
    """

    def __init__(
        self, data_a: Sequence, data_b: Sequence, transform: Callable | None = None, keys: tuple[str, str] = ("A", "B")
    ):
        if len(data_a) == 0 or len(data_b) == 0:
            raise ValueError(f"both domains need samples, got {len(data_a)} (A) and {len(data_b)} (B).")
        super().__init__(data=data_a, transform=transform)
        self.data_b = data_b
        self.keys = keys

    def __len__(self) -> int:
        return max(len(self.data), len(self.data_b))

    def _transform(self, index: int):
        j = int(torch.randint(len(self.data_b), ()))
        a, b = self.data[index % len(self.data)], self.data_b[j]
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            item = {**a, **b}
        else:
            item = {self.keys[0]: a, self.keys[1]: b}
        item = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in item.items()}  # copy out of memory maps
        return self.transform(item) if self.transform is not None else item


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


class SkipFailuresDataset(Dataset):
    """A dataset of ``{"image": path}`` items that turns a failing item into ``{"source": path, "error": reason}``.

    Batch jobs (inference on a folder) use it so that one corrupt, 2D/4D or NaN-holding file is reported
    with its name and reason while the others are still processed. Good items gain ``"source"`` too.

    Args:
        data: ``[{"image": path, ...}]``.
        transform: MONAI dictionary transform (loading included).
        source_key: the key holding the file name.
    """

    def __init__(self, data: Sequence[dict], transform: Callable | None = None, source_key: str = "image"):
        super().__init__(data=data, transform=transform)
        self.source_key = source_key

    def _transform(self, index: int):
        source = str(self.data[index][self.source_key])
        try:
            item = super()._transform(index)
        except Exception as e:  # reported per file by the consumer, never silently dropped
            cause = _root_cause(e)
            reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            if source not in reason:
                reason = f"{source}: {reason}"
            return {"source": source, "error": reason}
        return {**item, "source": source}
