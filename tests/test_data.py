from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from mr2ct.data import (
    DigitVideoConfig,
    UnpairedDataset,
    build_volumetric_mnist,
    erosion_profile,
    load_digits,
    load_split,
    paired_items,
    read_idx,
    render_volumes,
    write_nifti_cases,
)


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def test_read_idx_round_trip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    write_idx(tmp_path / "img.idx", images)
    write_idx(tmp_path / "lab.idx.gz", labels, compress=True)
    assert np.array_equal(read_idx(tmp_path / "img.idx"), images)
    x, y = load_digits(tmp_path / "img.idx", tmp_path / "lab.idx.gz")
    assert np.array_equal(x, images) and np.array_equal(y, labels)
    big = np.arange(6, dtype=np.int32).reshape(2, 3)
    write_idx(tmp_path / "big.idx", big)
    assert np.array_equal(read_idx(tmp_path / "big.idx"), big)


def test_read_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="bad.idx.*magic"):
        read_idx(bad)
    truncated = tmp_path / "trunc.idx"
    write_idx(truncated, np.zeros((3, 4, 4), np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:-5])
    with pytest.raises(ValueError, match="trunc.idx.*announces"):
        read_idx(truncated)
    write_idx(tmp_path / "img.idx", np.zeros((3, 4, 4), np.uint8))
    write_idx(tmp_path / "lab.idx", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        load_digits(tmp_path / "img.idx", tmp_path / "lab.idx")


def test_bundled_digits_are_real_mnist():
    images, labels = load_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert set(labels.tolist()) == set(range(10))
    assert images.max() == 255 and 0.05 < (images > 127).mean() < 0.3


def test_erosion_profiles():
    sandglass, spherical = erosion_profile(30, "sandglass"), erosion_profile(30, "spherical")
    assert (
        sandglass[0] == 0
        and sandglass[-1] == pytest.approx(0, abs=1e-9)
        and sandglass[14] == pytest.approx(spherical[0], rel=0.01)
    )
    assert np.allclose(sandglass + spherical, spherical[0])
    with pytest.raises(ValueError, match="unknown volume kind"):
        erosion_profile(30, "cube")


def test_volumes_follow_the_intensity_pattern():
    digits, _ = load_digits()
    a = render_volumes(digits[:20], "sandglass", 30, (84, 84)).astype(float)
    b = render_volumes(digits[:20], "spherical", 30, (84, 84)).astype(float)
    assert a.shape == (20, 1, 30, 84, 84) and a.dtype == float
    mass_a, mass_b = a.mean(axis=(0, 1, 3, 4)), b.mean(axis=(0, 1, 3, 4))
    assert mass_a[0] > 2 * mass_a[15] and mass_a[-1] > 2 * mass_a[15]  # decay then rise
    assert mass_b[15] > 2 * mass_b[0] and mass_b[15] > 2 * mass_b[-1]  # rise then decay
    assert np.allclose(a[:, :, 0], b[:, :, 15], atol=3)  # same digit, (almost) the same erosion level


def test_build_is_deterministic_split_and_cached(tmp_path, tiny_vmnist):
    meta = json.loads((tiny_vmnist / "meta.json").read_text(encoding="utf-8"))
    assert meta["counts"] == {"train_A": 14, "train_B": 14, "test_A": 12, "test_B": 12}
    again = build_volumetric_mnist(tmp_path, DigitVideoConfig(depth=8, size=(16, 16), num_digits=40, seed=0))
    for name in ("train_A", "train_B", "test_A", "test_B"):
        assert np.array_equal(np.load(tiny_vmnist / f"{name}.npy"), np.load(again / f"{name}.npy"))
    mtime = (again / "train_A.npy").stat().st_mtime_ns
    assert build_volumetric_mnist(tmp_path, DigitVideoConfig(depth=8, size=(16, 16), num_digits=40)) == again
    assert (again / "train_A.npy").stat().st_mtime_ns == mtime  # cached, not rebuilt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    other = build_volumetric_mnist(tmp_path, DigitVideoConfig(depth=8, size=(16, 16), num_digits=40, seed=1))
    assert not np.array_equal(np.load(other / "test_A.npy"), np.load(again / "test_A.npy"))

    # training domains come from disjoint digits; test pairs are the same digit in both domains
    tr_a, tr_b = load_split(tiny_vmnist, "train", "A"), load_split(tiny_vmnist, "train", "B")
    assert not any(np.array_equal(x[:, 0], y[:, 4]) for x in tr_a for y in tr_b)
    te_a, te_b = load_split(tiny_vmnist, "test", "A"), load_split(tiny_vmnist, "test", "B")
    assert np.array_equal(np.load(tiny_vmnist / "test_A_labels.npy"), np.load(tiny_vmnist / "test_B_labels.npy"))
    assert np.allclose(te_a[:, :, 0].astype(float), te_b[:, :, 4].astype(float), atol=12)


def test_bad_dataset_settings(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        DigitVideoConfig(depth=0)
    with pytest.raises(ValueError, match="positive"):
        DigitVideoConfig(size=(-1, 28))
    with pytest.raises(ValueError, match="only 5000"):
        build_volumetric_mnist(tmp_path, DigitVideoConfig(num_digits=6000))
    with pytest.raises(FileNotFoundError, match="was the data set built"):
        load_split(tmp_path, "train", "A")


def test_unpaired_dataset_draws_b_at_random(tiny_vmnist):
    a, b = load_split(tiny_vmnist, "train", "A"), load_split(tiny_vmnist, "train", "B")
    ds = UnpairedDataset(a, b)
    assert len(ds) == 14
    torch.manual_seed(0)
    items = [ds[0] for _ in range(20)]
    assert all(np.array_equal(it["A"], a[0]) for it in items)
    assert len({it["B"].tobytes() for it in items}) > 5
    assert isinstance(items[0]["A"], np.ndarray) and not isinstance(items[0]["A"], np.memmap)
    with pytest.raises(ValueError, match="both domains"):
        UnpairedDataset(a, [])


def test_paired_items_and_nifti_cases(tmp_path, tiny_vmnist):
    import nibabel as nib

    a, b = load_split(tiny_vmnist, "test", "A"), load_split(tiny_vmnist, "test", "B")
    items = paired_items(a, b, limit=3)
    assert len(items) == 3 and items[2]["index"] == 2 and np.array_equal(items[1]["label"], b[1])
    with pytest.raises(ValueError, match="equal lengths"):
        paired_items(a, b[:2])
    out = write_nifti_cases(a, tmp_path / "nii", prefix="case", limit=2)
    files = sorted(out.glob("*.nii.gz"))
    assert [f.name for f in files] == ["case_0000.nii.gz", "case_0001.nii.gz"]
    assert np.array_equal(nib.load(files[1]).get_fdata(), a[1, 0])


def test_validation_split_is_held_out_of_training(tmp_path, tiny_vmnist):
    config = DigitVideoConfig(depth=8, size=(16, 16), num_digits=40, seed=0, val_fraction=0.25)
    folder = build_volumetric_mnist(tmp_path, config)
    assert folder != tiny_vmnist and folder.name.endswith("_val0.25")
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["counts"] == {"train_A": 10, "train_B": 11, "test_A": 12, "test_B": 12, "val_A": 7, "val_B": 7}
    for name in ("test_A", "test_B"):  # the test split is the one without validation
        assert np.array_equal(np.load(folder / f"{name}.npy"), np.load(tiny_vmnist / f"{name}.npy"))
    val_labels = np.load(folder / "val_A_labels.npy")
    assert np.array_equal(val_labels, np.load(folder / "val_B_labels.npy"))  # paired
    val, test = load_split(folder, "val", "A"), load_split(folder, "test", "A")
    train = np.concatenate([load_split(folder, "train", "A"), load_split(folder, "train", "B")])
    assert not any(np.array_equal(v, x) for v in val for x in [*train, *test])  # disjoint digits
    with pytest.raises(ValueError, match="val_fraction"):
        DigitVideoConfig(val_fraction=1.0)
