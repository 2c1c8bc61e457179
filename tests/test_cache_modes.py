"""The training data's cache modes (config key ``cache``): the same batches in memory, on disk and uncached."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Compose, EnsureTyped, ScaleIntensityRanged
from monai.utils import set_determinism

from mr2ct.benchmarks.data_loading import write_volumes
from mr2ct.bundle import load_config
from mr2ct.bundle.settings import MRCTSettings
from mr2ct.data import UnpairedDataset, cached_dataset, load_split

from conftest import REPO

MODES = ("memory", "disk", "none")


def batches(bundle: str, overrides: dict, n: int = 4, files=()) -> list[dict]:
    set_determinism(0)
    loader = load_config(bundle, files=list(files), overrides=overrides).get_parsed_content("train#dataloader")
    set_determinism(0)
    out = []
    for batch in loader:
        out.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        if len(out) == n:
            break
    return out


def assert_same_batches(first: list[dict], other: list[dict], where: str) -> None:
    assert len(first) == len(other), where
    for i, (x, y) in enumerate(zip(first, other)):
        assert x.keys() == y.keys(), where
        for k in ("A", "B"):
            assert torch.equal(torch.as_tensor(x[k]), torch.as_tensor(y[k])), f"{where}: batch {i} {k}"
        for k in set(x) - {"A", "B"}:
            assert str(x[k]) == str(y[k]), f"{where}: batch {i} {k}"


@pytest.fixture(scope="module")
def small_mrct(tmp_path_factory):
    return write_volumes(tmp_path_factory.mktemp("volumes"), 6, shape=(8, 16, 16), seed=1)


def mrct_overrides(mr, ct, tmp_path, cache):
    return {
        "mr_dir": str(mr),
        "ct_dir": str(ct),
        "volume_size": [8, 16, 16],
        "num_workers": 0,
        "val_interval": 0,
        "dataset_dir": str(tmp_path / "data"),
        "cache": cache,
    }


def test_mrct_same_batches_in_every_cache_mode(tmp_path, small_mrct):
    mr, ct = small_mrct
    runs = {mode: batches("mrct_cyclegan3d", mrct_overrides(mr, ct, tmp_path, mode)) for mode in MODES}
    runs["disk, from the cache"] = batches("mrct_cyclegan3d", mrct_overrides(mr, ct, tmp_path, "disk"))
    for mode, got in runs.items():
        assert_same_batches(runs["memory"], got, mode)
    cached = list((tmp_path / "data" / "cache").glob("*/*.pt"))
    # an entry per volume read so far (written on first read), a folder per domain's preprocessing
    assert 4 <= len(cached) <= 12 and len({p.parent for p in cached}) == 2
    other = mrct_overrides(mr, ct, tmp_path, "disk") | {"volume_size": [8, 12, 12]}
    batches("mrct_cyclegan3d", other, n=1)  # other preprocessing settings: new entries, none reused
    assert len({p.parent for p in (tmp_path / "data" / "cache").glob("*/*.pt")}) == 4


def test_clip_bundle_same_batches_in_every_mode_and_as_before(tmp_path, tiny_vmnist):
    overrides = {"data_folder": str(tiny_vmnist), "depth": 8, "size": [16, 16], "num_workers": 0, "val_interval": 0}
    overrides["dataset_dir"] = str(tmp_path)
    runs = {mode: batches("vmnist_cyclegan3d", overrides | {"cache": mode}) for mode in MODES}
    # before the cache key: memory-mapped domains, the merged item scaled to [-1, 1]
    keys = ["A", "B"]
    transform = Compose([ScaleIntensityRanged(keys, 0, 255, -1.0, 1.0), EnsureTyped(keys, dtype=torch.float32)])
    dataset = UnpairedDataset(load_split(tiny_vmnist, "train", "A"), load_split(tiny_vmnist, "train", "B"), transform)
    set_determinism(0)
    loader = DataLoader(dataset, batch_size=1, shuffle=True, drop_last=True)
    set_determinism(0)
    before = [batch for _, batch in zip(range(4), loader)]
    for mode, got in runs.items():
        assert_same_batches(before, got, mode)


def test_cache_key_is_checked():
    with pytest.raises(ValueError, match="config key 'cache' is 'ram'; choose one of memory, disk, none"):
        MRCTSettings.check({"cache": "ram"})  # as at the start of every workflow (see test_faults_config)
    with pytest.raises(ValueError, match="cache must be one of memory, disk, none"):
        cached_dataset([], None, cache="RAM")
    with pytest.raises(ValueError, match="needs a cache_dir"):
        cached_dataset([{"A": np.zeros(2)}], lambda x: x, cache="disk")


def test_every_bundle_documents_the_cache_key():
    for readme in [REPO / "README.md", *sorted((REPO / "bundles").glob("*/docs/README.md"))]:
        assert "`cache`" in readme.read_text(encoding="utf-8"), readme


@pytest.mark.parametrize("workflow, dataset_key", [("train", "validate#dataset"), ("evaluate", "dataset")])
def test_held_out_clips_are_read_as_private_writable_copies(tiny_vmnist, workflow, dataset_key):
    """Validation and evaluation read each held-out clip as a copy out of the memory-mapped file (as training
    does), so no transform sees a read-only view of the data set (torch warns that writing one is undefined)."""
    overrides = {"data_folder": str(tiny_vmnist), "depth": 8, "size": [16, 16], "num_workers": 0}
    dataset = load_config("vmnist_cyclegan3d", workflow, overrides=overrides).get_parsed_content(dataset_key)
    source = load_split(tiny_vmnist, "test", "A")
    loaded = dataset.transform.transforms[0](dataset.data[1])  # the first step: LoadClipd
    assert loaded["image"].flags.writeable and not np.shares_memory(loaded["image"], source)
    assert np.array_equal(loaded["image"], source[1]) and loaded["index"] == 1
    item = dataset[1]
    assert item["image"].dtype == torch.float32 and float(item["image"].min()) >= -1.0
    assert torch.allclose(item["image"], torch.as_tensor(source[1] / 127.5 - 1.0, dtype=torch.float32), atol=1e-6)
