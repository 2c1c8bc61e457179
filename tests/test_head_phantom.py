"""The procedural head phantom: grid, determinism, tissue physics, shared anatomy, resolution, the built folder."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from mr2ct.data.head_phantom import TISSUES, HeadPhantomConfig, build_head_phantom, render_head

SMALL = HeadPhantomConfig(shape=(48, 48, 12), num_train=2, num_test=2, seed=3)
MEDIUM = HeadPhantomConfig(shape=(96, 96, 20))  # fine enough for thin tissues (scalp fat, skull tables)
BRAIN = (TISSUES["grey_matter"], TISSUES["white_matter"])


def _subject(config: HeadPhantomConfig, i: int) -> dict[str, np.ndarray]:
    return render_head(np.random.default_rng([config.seed, i]), config)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _downsample2(a: np.ndarray) -> np.ndarray:
    nx, ny, nz = a.shape
    return a.reshape(nx // 2, 2, ny // 2, 2, nz // 2, 2).mean(axis=(1, 3, 5))


@pytest.fixture(scope="module")
def medium_heads() -> list[dict[str, np.ndarray]]:
    return [_subject(MEDIUM, i) for i in range(3)]


def test_config_defaults_spacing_affine_and_name():
    config = HeadPhantomConfig()
    assert config.shape == (256, 256, 30) and config.num_train == 40 and config.num_test == 10
    np.testing.assert_allclose(config.spacing, (0.9, 0.9, 3.0))
    affine = config.affine
    assert affine.shape == (4, 4)
    np.testing.assert_allclose(np.diag(affine), (0.9, 0.9, 3.0, 1.0))
    centre = affine @ np.array([*((np.array(config.shape) - 1) / 2), 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)  # the volume centre sits at (0, 0, 0) mm
    assert config.folder_name() == "headphantom_256x256x30_n40-10_seed0"
    assert SMALL.folder_name() == "headphantom_48x48x12_n2-2_seed3"
    assert HeadPhantomConfig(fov_mm=(200, 200, 80)).folder_name() != config.folder_name()
    info = SMALL.as_dict()
    assert info == {"shape": [48, 48, 12], "fov_mm": [230.4, 230.4, 90.0], "num_train": 2, "num_test": 2, "seed": 3}
    json.dumps(info)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"shape": (64, 64)}, "shape"),
        ({"shape": (4, 64, 64)}, "shape"),
        ({"shape": (64, 64, 8.5)}, "shape"),
        ({"fov_mm": (230.4, -1.0, 90.0)}, "fov_mm"),
        ({"fov_mm": (230.4, 90.0)}, "fov_mm"),
        ({"num_train": 0}, "num_train"),
        ({"num_test": -1}, "num_test"),
        ({"num_train": 2.5}, "num_train"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        HeadPhantomConfig(**kwargs)


def test_render_shapes_dtypes_and_labels():
    head = _subject(SMALL, 0)
    assert set(head) == {"mr", "ct", "mask", "labels"}
    for key, dtype in (("mr", np.float32), ("ct", np.float32), ("mask", np.uint8), ("labels", np.uint8)):
        assert head[key].shape == SMALL.shape and head[key].dtype == dtype, key
    assert set(np.unique(head["mask"])) == {0, 1}
    assert set(np.unique(head["labels"])) <= set(TISSUES.values())
    assert np.isfinite(head["mr"]).all() and np.isfinite(head["ct"]).all()
    assert head["mr"].min() >= 0 and head["mr"].max() < 2000
    assert head["ct"].min() >= -1024 and head["ct"].max() <= 3071


def test_render_is_deterministic_and_subjects_differ():
    a, b, c = _subject(SMALL, 0), _subject(SMALL, 0), _subject(SMALL, 1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["labels"], c["labels"])
    assert np.abs(a["ct"] - c["ct"]).mean() > 20


def test_geometry_brow_at_the_top_jaw_at_the_bottom_face_anterior():
    labels = _subject(SMALL, 1)["labels"]
    top, bottom = labels[..., -1], labels[..., :3]
    assert np.isin(top, BRAIN).mean() > 0.15 and not (top == TISSUES["teeth"]).any()
    assert (bottom == TISSUES["teeth"]).any()
    assert not (labels[..., 0] == TISSUES["grey_matter"]).any()  # below the brain (the cord is white matter)
    y = np.arange(SMALL.shape[1]) - (SMALL.shape[1] - 1) / 2  # voxel y about the centre, posterior -> anterior
    for tissue in ("teeth", "vitreous"):
        assert y[np.nonzero(labels == TISSUES[tissue])[1]].mean() > 5, tissue
    z_eyes = np.nonzero(labels == TISSUES["vitreous"])[2].mean()
    z_teeth = np.nonzero(labels == TISSUES["teeth"])[2].mean()
    assert z_teeth < z_eyes


def test_ct_physics(medium_heads):
    for head in medium_heads:
        ct, labels, mask = head["ct"], head["labels"], head["mask"].astype(bool)
        outside = ct[~mask]
        assert abs(outside.mean() + 1000) < 3 and outside.std() < 25  # air and noise only, no tissue
        assert 0 <= np.median(ct[np.isin(labels, BRAIN)]) <= 60
        assert np.median(ct[labels == TISSUES["cortical_bone"]]) > 300
        assert np.median(ct[labels == TISSUES["teeth"]]) > 1000
        assert np.median(ct[labels == TISSUES["fat"]]) < 0
        assert np.median(ct[labels == TISSUES["air"]]) < -500


def test_mr_physics(medium_heads):
    for head in medium_heads:
        mr, labels = head["mr"], head["labels"]
        med = {name: np.median(mr[labels == label]) for name, label in TISSUES.items()}
        brain = np.median(mr[np.isin(labels, BRAIN)])
        assert med["cortical_bone"] < 0.5 * brain and med["teeth"] < 0.5 * brain
        assert med["fat"] > brain and med["white_matter"] > med["grey_matter"] > med["csf"]
        assert med["vitreous"] < med["grey_matter"] and med["marrow"] > med["cortical_bone"]
        assert med["background"] < 0.1 * brain and med["air"] < 0.2 * brain


def test_mask_covers_the_head(medium_heads):
    for head in medium_heads:
        mask, labels = head["mask"].astype(bool), head["labels"]
        assert mask[labels != TISSUES["background"]].all()
        assert 0.2 < mask.mean() < 0.8


def test_ct_and_mr_share_the_anatomy():
    same, other = _subject(SMALL, 0), _subject(SMALL, 1)
    ct, mr = same["ct"], same["mr"]
    brain = np.median(mr[np.isin(same["labels"], BRAIN)])
    dense = ct > 700
    dark_same = np.median(mr[dense]) / brain
    dark_other = np.median(other["mr"][dense]) / brain
    assert dark_same < 0.45 and dark_same < dark_other  # dense bone in CT is dark in the same subject's MR
    bone = ct[same["mask"] > 0] > 300
    assert np.corrcoef(bone, mr[same["mask"] > 0])[0, 1] < -0.05


def test_same_anatomy_at_two_resolutions():
    fine_config, coarse_config = HeadPhantomConfig(shape=(96, 96, 24)), HeadPhantomConfig(shape=(48, 48, 12))
    fine, coarse = _subject(fine_config, 2), _subject(coarse_config, 2)
    other = _subject(coarse_config, 3)
    mask = _downsample2(fine["mask"].astype(float)) > 0.5
    assert _dice(mask, coarse["mask"] > 0) > 0.9
    brain = _downsample2(np.isin(fine["labels"], BRAIN).astype(float)) > 0.5
    assert _dice(brain, np.isin(coarse["labels"], BRAIN)) > 0.88
    assert _dice(brain, np.isin(coarse["labels"], BRAIN)) > _dice(brain, np.isin(other["labels"], BRAIN)) + 0.05
    assert np.corrcoef(_downsample2(fine["ct"]).ravel(), coarse["ct"].ravel())[0, 1] > 0.95


def test_build_layout_pairs_and_cache(tmp_path):
    folder = build_head_phantom(tmp_path, SMALL)
    assert folder == tmp_path / SMALL.folder_name()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no temporary folder left behind
    names = {
        sub: sorted(p.name for p in (folder / sub).iterdir())
        for sub in ("train/mr", "train/ct", "test/mr", "test/ct", "test/mask")
    }
    assert len(names["train/mr"]) == len(names["train/ct"]) == 2
    assert not set(names["train/mr"]) & set(names["train/ct"])
    assert names["test/mr"] == names["test/ct"] == names["test/mask"] and len(names["test/mr"]) == 2
    assert not (set(names["train/mr"]) | set(names["train/ct"])) & set(names["test/mr"])

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["shape"] == [48, 48, 12] and meta["counts"] == {"train_mr": 2, "train_ct": 2, "test": 2}
    assert meta["subjects"] == {"train_mr": [0, 1], "train_ct": [2, 3], "test": [4, 5]}
    np.testing.assert_allclose(meta["spacing_mm"], SMALL.spacing)
    assert meta["tissues"] == TISSUES and meta["description"]
    assert names["train/ct"] == ["subject_0002.nii.gz", "subject_0003.nii.gz"]

    for sub, dtype in (
        ("train/mr", np.float32),
        ("train/ct", np.int16),
        ("test/mr", np.float32),
        ("test/ct", np.int16),
        ("test/mask", np.uint8),
    ):
        img = nib.load(folder / sub / names[sub][0])
        assert img.shape == SMALL.shape and img.get_data_dtype() == dtype, sub
        np.testing.assert_allclose(img.affine, SMALL.affine, atol=1e-5)
        assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1

    # a test pair is one subject: the files are its rendering
    subject = int(names["test/ct"][0][len("subject_") : -len(".nii.gz")])
    head = _subject(SMALL, subject)
    name = names["test/ct"][0]
    np.testing.assert_array_equal(
        np.asanyarray(nib.load(folder / "test/ct" / name).dataobj), np.rint(head["ct"]).astype(np.int16)
    )
    np.testing.assert_allclose(nib.load(folder / "test/mr" / name).get_fdata(), head["mr"], rtol=1e-6)
    np.testing.assert_array_equal(np.asanyarray(nib.load(folder / "test/mask" / name).dataobj), head["mask"])

    # cached: a second call returns at once and rewrites nothing
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert build_head_phantom(tmp_path, SMALL) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == stamps
    assert sorted(os.listdir(tmp_path)) == [folder.name]
