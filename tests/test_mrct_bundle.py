"""The MR<->CT bundle as users run it: phantom by default, train, folder inference of any volume, evaluation."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from monai.bundle import ConfigWorkflow, verify_net_in_out

from mr2ct.bundle import load_config
from mr2ct.data import build_head_phantom, phantom_config

import conftest
from conftest import REPO

BUNDLE = REPO / "bundles" / "mrct_cyclegan3d"
COMMON = conftest.REPO / "bundles" / "common" / "configs"  # MONAI tools read the layers listed
CONFIGS = BUNDLE / "configs"
TINY = {
    "volume_size": [8, 32, 32],
    "ngf": 4,
    "ndf": 4,
    "num_res_blocks": 1,
    "num_train_subjects": 2,
    "num_test_subjects": 2,
    "num_workers": 0,
}


def tiny_overrides(tmp_path: Path) -> dict:
    return {
        **TINY,
        "bundle_root": str(BUNDLE),
        "dataset_dir": str(tmp_path / "data"),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "runs"),
    }


def run_bundle(run_id: str, config: str, overrides: dict) -> subprocess.CompletedProcess:
    return conftest.run_bundle(CONFIGS, run_id, config, overrides)


def write_nifti(path: Path, data: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Path:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def write_dicom_series(folder: Path, volume: np.ndarray, spacing=(0.8, 0.8, 2.5)) -> Path:
    """A CT-like DICOM series, one file per slice, with the geometry tags set explicitly."""
    folder.mkdir(parents=True)
    image = sitk.GetImageFromArray(volume.astype(np.int16))  # (z, y, x) numpy order
    image.SetSpacing(spacing)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.shape[0]):
        s = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.77",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{p:.4f}" for p in position),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": str(spacing[2]),
            "0010|0010": "DOE^JANE",
            "0010|0020": "P-0042",
        }.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(s)
    return folder


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_metadata_and_paper_settings():
    meta = json.loads((CONFIGS / "metadata.json").read_text(encoding="utf-8"))
    for key in (
        "schema",
        "version",
        "changelog",
        "monai_version",
        "pytorch_version",
        "numpy_version",
        "required_packages_version",
        "task",
        "description",
        "authors",
        "copyright",
        "network_data_format",
    ):
        assert key in meta, key
    assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == [30, 256, 256]
    train = load_config(BUNDLE.name).get()
    assert (train["volume_size"], train["ngf"], train["num_res_blocks"]) == ([30, 256, 256], 64, 9)
    assert train["lambda_cycle"] == 10.0 and train["lr"] == 0.0002 and train["ct_window"] == [-1000.0, 2000.0]


def test_network_matches_metadata_offline():
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=[str(COMMON / "train.json"), str(CONFIGS / "train.json")],
        device="cpu",
        ngf=4,
        num_res_blocks=1,
        bundle_root=str(BUNDLE),
    )


@pytest.mark.parametrize(
    "config, workflow_type", [("train.json", "train"), ("inference.json", "infer"), ("evaluate.json", "infer")]
)
def test_bundle_workflow_properties(tmp_path, config, workflow_type):
    if workflow_type == "infer":  # inference and evaluation need trained weights: any of the right shape
        parser = load_config(BUNDLE.name, "inference", overrides=tiny_overrides(tmp_path))
        (tmp_path / "models").mkdir()
        torch.save(parser.get_parsed_content("network_def").state_dict(), tmp_path / "models" / "model.pt")
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / config),
        workflow_type=workflow_type,
        meta_file=str(CONFIGS / "metadata.json"),
        **tiny_overrides(tmp_path),
    )
    workflow.initialize()
    assert workflow.check_properties() in (None, [])


def make_inference_folder(root: Path) -> tuple[Path, dict[str, Path]]:
    """Three good NIfTI volumes of different shapes/spacings, a DICOM series, and five bad files."""
    rng = np.random.default_rng(0)
    folder = root / "in"
    folder.mkdir()
    good = {
        "a": write_nifti(
            folder / "a.nii.gz",
            rng.normal(300, 50, (40, 50, 45)).astype(np.float32),
            (1.2, 1.2, 1.2),
            (-20.0, 5.0, 10.0),
        ),
        "b": write_nifti(folder / "b.nii.gz", rng.normal(300, 50, (32, 32, 8)).astype(np.float32), (7.2, 7.2, 11.25)),
        "c": write_nifti(folder / "c.nii", rng.normal(300, 50, (24, 32, 32)).astype(np.int16), (2.0, 1.0, 1.0)),
        "series": write_dicom_series(folder / "series", rng.normal(300, 50, (12, 20, 18))),
    }
    tmp = write_nifti(root / "full.nii.gz", rng.normal(size=(16, 16, 16)).astype(np.float32))
    (folder / "truncated.nii.gz").write_bytes(tmp.read_bytes()[:200])
    (folder / "corrupt.nii").write_text("this is not a NIfTI file")
    write_nifti(folder / "flat.nii.gz", rng.normal(size=(16, 16)).astype(np.float32))
    write_nifti(folder / "fourd.nii.gz", rng.normal(size=(16, 16, 16, 3)).astype(np.float32))
    nan = rng.normal(size=(16, 16, 16)).astype(np.float32)
    nan[3, 4, 5] = np.nan
    write_nifti(folder / "nan.nii.gz", nan)
    return folder, good


def test_train_infer_evaluate_end_to_end(tmp_path):
    ov = tiny_overrides(tmp_path)
    train = run_bundle(
        "training",
        "train.json",
        {**ov, "max_epochs": 2, "decay_epochs": 1, "epoch_length": 2, "val_interval": 1, "log_interval": 1},
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert {"model.pt", "model_ba.pt", "checkpoint_2.pt", "checkpoint_4.pt"} <= {
        p.name for p in (tmp_path / "models").iterdir()
    }
    assert "val_mae_hu" in train.stdout + train.stderr
    phantom = next((tmp_path / "data").glob("headphantom_*"))
    assert len(list((phantom / "train" / "mr").iterdir())) == 2

    # inference on a folder of mixed volumes: good ones translated on their own grid, bad ones reported
    in_dir, good = make_inference_folder(tmp_path)
    before = checksums(in_dir)
    out_dir = tmp_path / "out"
    infer = run_bundle("inference", "inference.json", {**ov, "input_dir": str(in_dir), "output_dir": str(out_dir)})
    assert infer.returncode == 1, infer.stderr[-3000:]
    assert "5 of 9 volume(s) failed" in infer.stderr
    assert checksums(in_dir) == before
    for name, source in good.items():
        out = nib.load(out_dir / f"{name}_synthct.nii.gz")
        if source.is_dir():
            reference = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(source)))
            lps = np.eye(4)
            lps[:3, :3] = np.reshape(reference.GetDirection(), (3, 3)) * reference.GetSpacing()
            lps[:3, 3] = reference.GetOrigin()
            assert out.shape == reference.GetSize()
            assert np.allclose(out.affine, np.diag([-1, -1, 1, 1]) @ lps, atol=1e-4)  # same world, RAS
        else:
            src = nib.load(source)
            assert out.shape == src.shape and np.allclose(out.affine, src.affine, atol=1e-4)
        data = out.get_fdata()
        assert np.isfinite(data).all() and -1000.5 <= data.min() and data.max() <= 2000.5  # HU, CT window
    rows = {Path(r["source"]).name: r for r in csv.DictReader(open(out_dir / "summary.csv"))}
    assert {n for n, r in rows.items() if r["status"] == "translated"} == {"a.nii.gz", "b.nii.gz", "c.nii", "series"}
    for bad in ("truncated.nii.gz", "corrupt.nii", "flat.nii.gz", "fourd.nii.gz", "nan.nii.gz"):
        assert rows[bad]["status"] == "failed" and bad in rows[bad]["reason"], rows[bad]
    assert "NaN" in rows["nan.nii.gz"]["reason"] and "2D" in rows["flat.nii.gz"]["reason"]

    # existing outputs are kept unless asked
    stamp = (out_dir / "a_synthct.nii.gz").stat().st_mtime_ns
    again = run_bundle("inference", "inference.json", {**ov, "input_dir": str(in_dir), "output_dir": str(out_dir)})
    assert (out_dir / "a_synthct.nii.gz").stat().st_mtime_ns == stamp
    assert "4 skipped" in again.stdout + again.stderr

    # the command-line shortcut, on a single DICOM series folder, overwriting on request; bf16 autocast (on the
    # CPU too) and batched windows give nearly the fp32 translation
    cli_out = tmp_path / "cli_out"
    args = [
        sys.executable,
        "-m",
        "mr2ct.cli",
        "translate",
        "--input_dir",
        str(good["series"]),
        "--output_dir",
        str(cli_out),
        "--overwrite",
        "True",
        "--amp",
        "true",
        "--sw_batch_size",
        "2",
    ]
    for k, v in ov.items():
        args += [f"--{k}", str(v)] if k != "output_dir" else []
    cli = subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace", timeout=600)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert [p.name for p in cli_out.glob("*.nii.gz")] == ["series_synthct.nii.gz"], (
        cli.stdout[-2000:] + cli.stderr[-2000:]
    )
    bf16 = nib.load(cli_out / "series_synthct.nii.gz").get_fdata()
    difference = np.abs(bf16 - nib.load(out_dir / "series_synthct.nii.gz").get_fdata())
    assert 0 < difference.mean() < 30 and difference.max() < 300, (difference.mean(), difference.max())  # HU

    # the synthetic CT of the DICOM MR, exported as a DICOM series in the source's study and geometry
    dicom_out = tmp_path / "dicom"
    export = subprocess.run(
        [
            sys.executable,
            "-m",
            "mr2ct.cli",
            "export-dicom",
            str(cli_out / "series_synthct.nii.gz"),
            "--output",
            str(dicom_out),
            "--source-dicom",
            str(good["series"]),
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(dicom_out))
    exported = sitk.ReadImage(files)
    source = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(good["series"])))
    assert exported.GetSize() == source.GetSize()
    assert np.allclose(exported.GetOrigin(), source.GetOrigin(), atol=1e-3)
    assert np.allclose(exported.GetSpacing(), source.GetSpacing(), atol=1e-4)
    assert np.allclose(exported.GetDirection(), source.GetDirection(), atol=1e-5)
    synthct = nib.load(cli_out / "series_synthct.nii.gz").get_fdata()
    assert np.abs(sitk.GetArrayFromImage(exported).transpose(2, 1, 0) - synthct).max() <= 0.5  # HU, rounded
    header = pydicom.dcmread(files[0])
    assert (str(header.PatientName), header.PatientID, header.Modality) == ("DOE^JANE", "P-0042", "CT")
    assert "NOT FOR DIAGNOSIS" in header.SeriesDescription

    evaluate = run_bundle("evaluating", "evaluate.json", ov)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    report = tmp_path / "runs" / "report"
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    for name in ("mae", "psnr", "ssim", "identity_mae", "linear_mae", "linear_ssim"):
        assert metrics[name]["n"] == 2, name
    assert metrics["linear_mae"]["mean"] < metrics["identity_mae"]["mean"]
    assert len(list(csv.DictReader(open(report / "cases.csv")))) == 2
    assert (report / "case_0.png").is_file() and "mid-planes" in (report / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_inference_errors_are_clear(tmp_path):
    ov = tiny_overrides(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_bundle("inference", "inference.json", {**ov, "input_dir": str(empty), "output_dir": str(tmp_path / "o")})
    assert run.returncode != 0 and str(empty) in run.stderr
    one = tmp_path / "one"
    one.mkdir()
    write_nifti(one / "a.nii.gz", np.ones((8, 8, 8), np.float32))
    inside = run_bundle("inference", "inference.json", {**ov, "input_dir": str(one), "output_dir": str(one / "out")})
    assert inside.returncode != 0 and "inside the input folder" in inside.stderr
    bad = run_bundle("inference", "inference.json", {**ov, "input_dir": str(empty), "direction": "mr2pet"})
    assert bad.returncode != 0 and "'direction'" in bad.stderr


def test_missing_weights_are_named(tmp_path):
    run = run_bundle("inference", "inference.json", {**tiny_overrides(tmp_path), "output_dir": str(tmp_path / "o")})
    assert run.returncode != 0 and "no trained weights at" in run.stderr and str(tmp_path / "models") in run.stderr
    assert run.stderr.splitlines()[-2].startswith("error: no trained weights at") and "Traceback" not in run.stderr


@pytest.mark.slow
def test_structure_pairs_confidence_and_settings_through_the_bundle(tmp_path):
    """Training with the structure loss and two registered pairs, inference with confidence maps (NIfTI beside each
    synthetic CT, mean in summary.csv), the per-tissue evaluation, the sheets' overlay, and weights of other
    settings refused in one line: the bundle commands and `mr2ct translate` as a user runs them."""
    ov = tiny_overrides(tmp_path)
    folder = build_head_phantom(tmp_path / "data", phantom_config(TINY["volume_size"], [230.4, 230.4, 90.0], 2, 2, 0))
    pairs = {"paired_mr_dir": str(folder / "test" / "mr"), "paired_ct_dir": str(folder / "test" / "ct")}
    settings = {
        **ov,
        "decay_epochs": 1,
        "epoch_length": 2,
        "val_interval": 0,
        "log_interval": 1,
        "lambda_structure": 1.0,
        **pairs,
    }
    train = run_bundle("training", "train.json", {**settings, "max_epochs": 1})
    assert train.returncode == 0, train.stderr[-3000:]
    resumed = run_bundle("training", "train.json", {**settings, "max_epochs": 2, "resume": True})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "runs" / "losses.csv")))
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
    assert float(rows[-1]["loss_structure"]) > 0 and float(rows[-1]["loss_paired"]) > 0
    settings = json.loads((tmp_path / "models" / "model_settings.json").read_text(encoding="utf-8"))
    assert (settings["ngf"], settings["num_res_blocks"], settings["volume_size"]) == (4, 1, [8, 32, 32])

    out = tmp_path / "out"
    infer = run_bundle("inference", "inference.json", {**ov, "output_dir": str(out), "uncertainty": True})
    assert infer.returncode == 0, infer.stderr[-3000:]
    for case in sorted((folder / "test" / "mr").iterdir()):
        stem = case.name.removesuffix(".nii.gz")
        synthct, spread = (nib.load(out / f"{stem}{postfix}.nii.gz") for postfix in ("_synthct", "_uncertainty"))
        assert spread.shape == synthct.shape and np.allclose(spread.affine, synthct.affine)
        assert spread.get_fdata().min() >= 0 and spread.get_fdata().max() > 0
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert all(float(r["mean_uncertainty"]) > 0 for r in summary) and len(summary) == 2

    evaluate = run_bundle("evaluating", "evaluate.json", {**ov, "uncertainty": True})
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    report = tmp_path / "runs" / "report"
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    for name in (
        "mae_air",
        "mae_soft",
        "mae_bone",
        "me_bone",
        "dice_bone",
        "linear_mae_bone",
        "mean_uncertainty",
        "uncertainty_voxel_spearman",
        "uncertainty_case_spearman",
    ):
        assert name in metrics["metrics"], name
    assert "phantom labels" in metrics["settings"]["tissue classes"]
    header = next(csv.reader(open(report / "cases.csv")))
    assert {"mae_bone", "dice_bone", "uncertainty_voxel_spearman"} <= set(header)
    assert (report / "case_0_uncertainty.png").is_file()
    assert "case_0_uncertainty" in (report / "report.md").read_text(encoding="utf-8")

    # a user's own registered pairs without tissue maps: tissues by thresholds on the real CT, said in the report
    own = {
        "mr_dir": str(folder / "test" / "mr"),
        "ct_dir": str(folder / "test" / "ct"),
        "output_dir": str(tmp_path / "own"),
    }
    evaluate = run_bundle("evaluating", "evaluate.json", {**ov, **own})
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    metrics = json.loads((tmp_path / "own" / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert "thresholds on the real CT" in metrics["settings"]["tissue classes"]
    assert {"mae_soft", "mae_bone", "dice_bone", "linear_mae_bone"} <= set(metrics["metrics"])
    assert "mean_uncertainty" not in metrics["metrics"]  # confidence maps only when asked for

    # quick-sized weights without the quick settings: refused before any work, naming what differs
    for args in (
        ["-m", "monai.bundle", "run", "inference", "--config_file", str(CONFIGS / "inference.json")],
        ["-m", "mr2ct.cli", "translate"],
    ):
        wrong = {**ov, "ngf": 8, "num_res_blocks": 2, "output_dir": str(tmp_path / "wrong")}
        command = [sys.executable, *args] + [
            x for k, v in wrong.items() for x in (f"--{k}", json.dumps(v) if isinstance(v, list) else str(v))
        ]
        refused = subprocess.run(command, capture_output=True, encoding="utf-8", errors="replace", timeout=600)
        assert refused.returncode != 0 and not (tmp_path / "wrong").exists()
        line = next(x for x in refused.stderr.splitlines() if x.startswith("error: the weights"))
        assert "ngf 4 (this run: 8)" in line and "num_res_blocks 1 (this run: 2)" in line
        assert "--ngf 4 --num_res_blocks 1" in line
