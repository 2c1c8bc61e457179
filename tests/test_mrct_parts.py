"""The parts the MR<->CT bundle is built from: shared transforms, pairs, writers, metrics handler, panels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from mr2ct.bundle import check_output_dir, shared_transforms
from mr2ct.data import (
    HeadPhantomConfig,
    SkipFailuresDataset,
    UnpairedDataset,
    build_head_phantom,
    mrct_paired_training_items,
    mrct_pairs,
    mrct_training_items,
    save_volume,
    validation_phantom,
)
from mr2ct.export import save_midplane_panel
from mr2ct.metrics import body_mask, linear_fit, mae_hu, synthrad_metric_handler

PHANTOM = HeadPhantomConfig(shape=(32, 32, 8), num_train=2, num_test=2, seed=0)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    return root, build_head_phantom(root, PHANTOM)


def test_shared_transforms_load_orient_and_window(phantom):
    _, folder = phantom
    ct_file = sorted((folder / "test" / "ct").iterdir())[0]
    chain = shared_transforms(
        "mrct.json", ["load", "to_network_layout", "ct_intensity"], keys=["B"], ct_window=[-1000.0, 2000.0]
    )
    item = {"B": str(ct_file)}
    for t in chain:
        item = t(item)
    hu = nib.load(ct_file).get_fdata()
    assert item["B"].shape == (1, 8, 32, 32)  # (C, slices, x, y)
    expected = np.clip((hu.transpose(2, 0, 1) + 1000) / 3000 * 2 - 1, -1, 1)
    np.testing.assert_allclose(item["B"][0].numpy(), expected, atol=1e-5)


def test_shared_transforms_errors():
    with pytest.raises(KeyError, match="no transform chain"):
        shared_transforms("mrct.json", ["nonsense"])
    with pytest.raises(KeyError, match="no parameter 'windw'"):
        shared_transforms("mrct.json", ["load"], windw=1)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        shared_transforms("missing.json", ["load"])


def test_training_items_and_pairs(phantom, tmp_path):
    root, folder = phantom
    mr, ct = mrct_training_items(root, PHANTOM)
    assert len(mr) == len(ct) == 2 and all("train" in p for p in mr + ct)
    assert not {p.split("/")[-1] for p in mr} & {p.split("/")[-1] for p in ct}  # disjoint subjects
    pairs = mrct_pairs(root, PHANTOM)
    assert [sorted(p) for p in pairs] == [["image", "label", "mask", "tissue"]] * 2
    assert all(p["image"].split("/")[-1] == p["label"].split("/")[-1] for p in pairs)
    with pytest.raises(ValueError, match="both an MR folder and a CT folder"):
        mrct_training_items(root, PHANTOM, mr=str(folder / "train" / "mr"))
    lonely = tmp_path / "ct"
    lonely.mkdir()
    first_ct = sorted((folder / "test" / "ct").iterdir())[0]
    (lonely / "other.nii.gz").write_bytes(first_ct.read_bytes())
    with pytest.raises(ValueError, match="unmatched"):
        mrct_pairs(root, PHANTOM, mr=str(folder / "test" / "mr"), ct=str(lonely))


def test_paired_training_items(phantom, tmp_path):
    _, folder = phantom
    mr, ct = folder / "test" / "mr", folder / "test" / "ct"
    assert mrct_paired_training_items() == []
    pairs = mrct_paired_training_items(mr=str(mr), ct=str(ct))
    assert [(Path(p["A"]).parent, Path(p["A"]).name) for p in pairs] == [(mr, Path(p["B"]).name) for p in pairs]
    names = sorted(p.name for p in mr.iterdir())
    datalist = tmp_path / "pairs.json"
    datalist.write_text(json.dumps({"training": [{"mr": f"{mr}/{n}", "ct": f"{ct}/{n}"} for n in names]}))
    assert mrct_paired_training_items(datalist=str(datalist)) == pairs
    datalist.write_text(json.dumps({"training": [{"mr": f"{mr}/{names[0]}"}, {"ct": f"{ct}/{names[0]}"}]}))
    with pytest.raises(ValueError, match=r"need both 'mr' and 'ct'; entries \[0, 1\]"):
        mrct_paired_training_items(datalist=str(datalist))
    with pytest.raises(ValueError, match="both an MR and a CT folder"):
        mrct_paired_training_items(mr=str(mr))
    with pytest.raises(ValueError, match="not both"):
        mrct_paired_training_items(mr=str(mr), ct=str(ct), datalist=str(datalist))


def test_validation_subjects_are_not_the_test_subjects(tmp_path):
    val = validation_phantom(PHANTOM, 2)
    assert (val.shape, val.fov_mm, val.num_test) == (PHANTOM.shape, PHANTOM.fov_mm, 2) and val.seed != PHANTOM.seed
    test = build_head_phantom(tmp_path, PHANTOM) / "test"
    other = build_head_phantom(tmp_path, val) / "test"
    for a, b in zip(sorted((test / "ct").iterdir()), sorted((other / "ct").iterdir())):
        assert not np.array_equal(nib.load(a).get_fdata(), nib.load(b).get_fdata())


def test_an_old_phantom_cache_gets_its_tissue_maps(tmp_path):
    folder = build_head_phantom(tmp_path, PHANTOM)
    first = sorted((folder / "test" / "tissue").iterdir())
    expected = [nib.load(f).get_fdata() for f in first]
    shutil.rmtree(folder / "test" / "tissue")  # as built before tissue maps existed
    assert build_head_phantom(tmp_path, PHANTOM) == folder
    again = sorted((folder / "test" / "tissue").iterdir())
    assert [f.name for f in again] == [f.name for f in first]
    assert all(np.array_equal(nib.load(f).get_fdata(), e) for f, e in zip(again, expected))


def test_unpaired_dataset_merges_dict_samples():
    data = UnpairedDataset([{"A": 1, "name_a": "x"}], [{"B": 2}, {"B": 2}])
    assert data[0] == {"A": 1, "name_a": "x", "B": 2}
    assert UnpairedDataset([1], [2])[0] == {"A": 1, "B": 2}


def test_skip_failures_dataset_reports_the_file():
    def load(item):
        if "bad" in item["image"]:
            raise RuntimeError("applying transform") from ValueError("truncated gzip stream")
        return {"image": 1}

    data = SkipFailuresDataset([{"image": "good.nii"}, {"image": "bad.nii"}], transform=load)
    assert data[0] == {"image": 1, "source": "good.nii"}
    assert data[1] == {"source": "bad.nii", "error": "bad.nii: truncated gzip stream"}


def test_save_volume_keeps_geometry_and_is_atomic(tmp_path):
    affine = np.array([[-0.9, 0, 0, 10], [0, 0.8, 0, -5], [0, 0, 3.0, 2], [0, 0, 0, 1]])
    volume = MetaTensor(torch.randn(1, 5, 6, 7) * 100, affine=torch.as_tensor(affine))
    path = save_volume(volume, tmp_path / "x_synthct.nii.gz")
    image = nib.load(path)
    assert image.shape == (5, 6, 7) and np.allclose(image.affine, affine)
    np.testing.assert_allclose(image.get_fdata(), volume[0].numpy(), rtol=1e-6, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_synthct.nii.gz"]
    save_volume(volume, tmp_path / "i.nii.gz", dtype="int16")
    assert nib.load(tmp_path / "i.nii.gz").get_data_dtype() == np.int16
    with pytest.raises(ValueError, match="expected a 3D volume"):
        save_volume(torch.zeros(2, 3, 4, 5), tmp_path / "bad.nii.gz", affine=np.eye(4))
    with pytest.raises(ValueError, match="no affine"):
        save_volume(torch.zeros(3, 4, 5), tmp_path / "bad.nii.gz")


def test_output_dir_inside_input_is_refused(tmp_path):
    check_output_dir(tmp_path / "in", tmp_path / "out")
    for bad in (tmp_path / "in", tmp_path / "in" / "out"):
        with pytest.raises(ValueError, match="inside the input folder"):
            check_output_dir(tmp_path / "in", bad)


def test_body_mask_and_linear_fit():
    ct = np.full((10, 12, 12), -1000.0)
    ct[2:8, 3:9, 3:9] = 40.0
    ct[4:6, 5:7, 5:7] = -1000.0  # air inside the body is part of it
    mask = body_mask(ct, dilation=0)
    assert mask[4, 5, 5] and mask[2:8, 3:9, 3:9].all() and mask.sum() == 6 * 6 * 6
    assert body_mask(ct).sum() > mask.sum()
    source = (ct + 7) / 3
    np.testing.assert_allclose(linear_fit(source, ct, mask), ct, atol=1e-6)


def test_synthrad_metric_handler_scores_model_and_yardsticks():
    ct = torch.full((1, 4, 8, 8), -1000.0)
    ct[:, 1:3, 2:6, 2:6] = 1000.0
    mr = (ct - 500) / 1500  # a linear image of the CT on [-1, 1]
    item = {"image": mr, "pred": ct + 10, "label": ct, "mask": torch.ones_like(ct)}
    results = {}
    for translation in ("pred", "identity", "linear"):
        handler = synthrad_metric_handler("mae", translation)
        engine = Engine(lambda e, b: [item])
        handler.attach(engine, "mae")
        engine.run([0])
        results[translation] = engine.state.metrics["mae"]
    assert results["pred"] == pytest.approx(10.0)
    assert results["linear"] == pytest.approx(0.0, abs=1e-3)
    expected_identity = mae_hu(ct[0], (mr[0] + 1) / 2 * 3000 - 1000, torch.ones(4, 8, 8, dtype=torch.bool))
    assert results["identity"] == pytest.approx(expected_identity)
    with pytest.raises(ValueError, match="metric must be"):
        synthrad_metric_handler("rmse")


def test_midplane_panel(tmp_path):
    volume = torch.linspace(-1, 1, 8 * 16 * 12).reshape(1, 8, 16, 12)
    path = save_midplane_panel(
        {"MR": volume, "CT": volume * 1000},
        tmp_path / "p.png",
        {"MR": (-1, 1), "CT": (-200, 1300)},
        spacing=(3.0, 0.9, 0.9),
    )
    assert path.is_file() and path.stat().st_size > 1000
