"""Datasets that pair domains: unpaired for training, paired (ground truth) for evaluation."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.data.utils import pickle_hashing
from monai.transforms import Compose, MapTransform

__all__ = [
    "CACHE_MODES",
    "LoadClipd",
    "SkipFailuresDataset",
    "UnpairedDataset",
    "cached_dataset",
    "clip_items",
    "clip_refs",
    "load_split",
    "paired_items",
    "root_cause",
]

CACHE_MODES = ("memory", "disk", "none")


def load_split(folder: str | Path, split: str, domain: str) -> np.ndarray:
    """Memory-map ``<folder>/<split>_<domain>.npy`` (e.g. ``train_A``) of a built data set."""
    path = Path(folder) / f"{split}_{domain}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; was the data set built (see the bundle's dataset_dir)?")
    return np.load(path, mmap_mode="r")


def clip_refs(folder: str | Path, split: str, domain: str) -> list[list]:
    """``[[path, i]]``, one reference per clip of ``<folder>/<split>_<domain>.npy``, for :class:`LoadClipd`
    (e.g. as the entries of :func:`paired_items`: each clip is then read, as a writable copy, when it is used)."""
    path = Path(folder) / f"{split}_{domain}.npy"
    return [[str(path), i] for i in range(len(load_split(folder, split, domain)))]


def clip_items(folder: str | Path, split: str, domain: str) -> list[dict]:
    """``[{domain: [path, i]}]``, one item per clip of ``<folder>/<split>_<domain>.npy`` (loaded by
    :class:`LoadClipd`): small items that a :func:`cached_dataset` can hash and cache."""
    return [{domain: ref} for ref in clip_refs(folder, split, domain)]


class LoadClipd(MapTransform):
    """Replace each ``[path, i]`` of :func:`clip_refs` / :func:`clip_items` by a copy of clip ``i`` of the
    memory-mapped ``path``."""

    def __init__(self, keys, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self._maps: dict[str, np.ndarray] = {}

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        out = dict(data)
        for key in self.key_iterator(out):
            entry: Any = out[key]  # (file, index in the file)
            path, index = entry
            if path not in self._maps:
                self._maps[path] = np.load(path, mmap_mode="r")
            out[key] = np.array(self._maps[path][index])  # a copy out of the memory map
        return out

    def __getstate__(self) -> dict:  # memory maps stay in their process (and out of cache hashes)
        return {**self.__dict__, "_maps": {}}


def _files_and_times(item) -> list:
    """The existing files an item names, with their sizes and modification times (so that a changed file is
    not served from an old disk cache)."""
    values = item.values() if isinstance(item, Mapping) else item if isinstance(item, (list, tuple)) else [item]
    out = []
    for value in values:
        if isinstance(value, (Mapping, list, tuple)):
            out += _files_and_times(value)
        elif isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
            stat = os.stat(value)
            out.append([str(value), stat.st_size, stat.st_mtime_ns])
    return out


def _item_hash(item) -> bytes:
    return pickle_hashing({"item": item, "files": _files_and_times(item)})


def _transform_key(transform: Callable) -> str:
    """A short key of a (deterministic) preprocessing chain and its settings: different sizes or windows must
    not share disk-cache entries (MONAI's own transform hash falls back to the class names)."""
    transforms = transform.flatten().transforms if isinstance(transform, Compose) else [transform]
    try:
        dump = pickle.dumps(transforms)
    except Exception:  # noqa: BLE001 - any unpicklable transform: fall back to the chain's class names
        dump = "".join(type(t).__qualname__ for t in transforms).encode()
    return hashlib.sha256(dump).hexdigest()[:16]


def cached_dataset(
    data: Sequence,
    transform: Callable,
    cache: str = "memory",
    cache_dir: str | Path | None = None,
    cache_rate: float = 1.0,
    num_workers: int | None = 0,
) -> Dataset:
    """The training data set of ``data`` items preprocessed by ``transform``, cached as ``cache`` says:

    - ``"memory"``: MONAI ``CacheDataset`` (``cache_rate`` of the items preprocessed once, up front, into RAM:
      fastest, memory grows with the data set);
    - ``"disk"``: MONAI ``PersistentDataset`` (each item preprocessed once, the first time it is read, saved to
      ``cache_dir/<key of the preprocessing>/`` and read back from there: memory flat in the data set's size; a
      changed file or preprocessing setting gets new entries);
    - ``"none"``: a plain ``Dataset`` (preprocessed at every read).

    The items, their order and values are the same in every mode.
    """
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {', '.join(CACHE_MODES)}, got {cache!r}.")
    if cache == "memory":
        return CacheDataset(data, transform, cache_rate=cache_rate, num_workers=num_workers)
    if cache == "disk":
        if cache_dir is None:
            raise ValueError("cache 'disk' needs a cache_dir.")
        folder = Path(cache_dir) / _transform_key(transform)
        folder.mkdir(parents=True, exist_ok=True)
        return PersistentDataset(data, transform, cache_dir=folder, hash_func=_item_hash)
    return Dataset(data, transform)


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


def root_cause(error: BaseException) -> BaseException:
    """The error at the root of ``error``'s chain of causes (``raise ... from``): what MONAI's transforms and config
    parser wrapped in their own ``RuntimeError``."""
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
            cause = root_cause(e)
            reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            if source not in reason:
                reason = f"{source}: {reason}"
            return {"source": source, "error": reason}
        return {**item, "source": source}
