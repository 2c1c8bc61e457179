"""The vmnist bundle as MONAI users run it: properties, metadata, and train -> inference -> evaluation end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_net_in_out

from mr2ct.bundle import load_config
from mr2ct.engine import GeneratorAverage, TrainingCheckpointer

import conftest
from conftest import MMNIST_BUNDLE, VMNIST_BUNDLE

COMMON = conftest.REPO / "bundles" / "common" / "configs"  # MONAI tools read the layers listed
CONFIGS = VMNIST_BUNDLE / "configs"
TINY = {"depth": 8, "size": [16, 16], "ngf": 4, "ndf": 4, "num_res_blocks": 1, "num_digits": 40, "num_workers": 0}


def tiny_overrides(tmp_path) -> dict:
    return {
        **TINY,
        "bundle_root": str(VMNIST_BUNDLE),
        "dataset_dir": str(tmp_path / "data"),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "runs"),
    }


def run_bundle(run_id: str, config: str, overrides: dict, *flags: str, configs=CONFIGS) -> subprocess.CompletedProcess:
    return conftest.run_bundle(configs, run_id, config, overrides, *flags)


@pytest.mark.parametrize("bundle", [VMNIST_BUNDLE, MMNIST_BUNDLE], ids=lambda p: p.name)
def test_metadata_has_mandatory_keys(bundle):
    meta = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
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
    assert meta["version"] in meta["changelog"]
    fmt = meta["network_data_format"]
    assert fmt["inputs"]["image"]["spatial_shape"] == [30, 84, 84] and "pred" in fmt["outputs"]


def test_network_matches_metadata_offline():
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=[str(COMMON / "train.json"), str(CONFIGS / "train.json")],
        device="cpu",
        ngf=4,
        num_res_blocks=1,
        bundle_root=str(VMNIST_BUNDLE),
    )


@pytest.mark.parametrize(
    "config, workflow_type", [("train.json", "train"), ("inference.json", "infer"), ("evaluate.json", "infer")]
)
def test_bundle_workflow_properties(tmp_path, config, workflow_type):
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / config),
        workflow_type=workflow_type,
        meta_file=str(CONFIGS / "metadata.json"),
        **tiny_overrides(tmp_path),
    )
    workflow.initialize()
    assert workflow.check_properties() in (None, [])
    assert workflow.bundle_root == str(VMNIST_BUNDLE) and str(workflow.dataset_dir).startswith(str(tmp_path))


def test_paper_settings_in_train_json():
    parser = load_config(VMNIST_BUNDLE.name).get()  # the bundle's train.json on its layers
    assert (parser["depth"], parser["size"], parser["ngf"], parser["num_res_blocks"]) == (30, [84, 84], 64, 9)
    assert parser["lambda_cycle"] == 10.0 and parser["lr"] == 0.0002 and parser["pool_size"] == 50
    assert parser["gen_conv"] == "full" and parser["d_view"] == "clip"


def test_gen_conv_sampling_kernel_cycle_weights_and_train_flip_reach_the_networks_and_batches():
    """``--gen_conv 2+1d`` builds factorised inner convolutions and ``--gen_sampling_kernel`` narrows the sampling
    convolutions, each recorded beside the weights; a cycle weight per domain reaches the trainer; ``--train_flip
    true`` reaches the batch preparer of any method (off by default)."""
    parser = load_config(VMNIST_BUNDLE.name, overrides={"gen_conv": "2+1d", "ngf": 4, "num_res_blocks": 1})
    net = parser.get_parsed_content("network_def")
    kernels = {m.kernel_size for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))}
    assert kernels == {(7, 7, 7), (1, 3, 3), (3, 1, 1)}
    assert parser.get_parsed_content("generator_settings")["gen_conv"] == "2+1d"
    frame_wise = load_config(
        MMNIST_BUNDLE.name, overrides={"gen_strides": [1, 2, 2], "gen_sampling_kernel": [1, 3, 3], "ngf": 4}
    )
    net = frame_wise.get_parsed_content("network_def")
    assert net.sampling_kernel_size == (1, 3, 3)
    assert frame_wise.get_parsed_content("generator_settings")["gen_sampling_kernel"] == [1, 3, 3]

    split_cycle = load_config(MMNIST_BUNDLE.name, overrides={"lambda_cycle": [10.0, 2.5]})
    assert split_cycle.get_parsed_content("train#trainer#lambda_cycle") == [10.0, 2.5]

    flipping = load_config(MMNIST_BUNDLE.name, overrides={"method": "random", "train_flip": True})
    assert flipping.get_parsed_content("train#prepare_batch").flip
    assert not load_config(MMNIST_BUNDLE.name).get_parsed_content("train#prepare_batch").flip


def test_train_infer_evaluate_end_to_end(tmp_path):
    ov = tiny_overrides(tmp_path)
    train = run_bundle(
        "training",
        "train.json",
        {
            **ov,
            "max_epochs": 2,
            "decay_epochs": 1,
            "epoch_length": 3,
            "val_interval": 1,
            "num_val_cases": 4,
            "log_interval": 1,
        },
    )
    assert train.returncode == 0, train.stderr[-3000:]
    models = tmp_path / "models"
    assert {"model.pt", "model_ba.pt", "checkpoint_3.pt", "checkpoint_6.pt"} <= {p.name for p in models.iterdir()}
    assert "val_l2" in train.stdout + train.stderr
    assert (tmp_path / "runs" / "losses.csv").read_text(encoding="utf-8").startswith("epoch,iteration,loss_g")
    assert list((tmp_path / "runs" / "samples").glob("*.png"))

    parser = load_config(VMNIST_BUNDLE.name, "inference", overrides={**ov, "device": "cpu"})
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(models / "model.pt", weights_only=True))  # model.pt is a plain generator state_dict

    out_dir = tmp_path / "translated"
    infer = run_bundle("inference", "inference.json", {**ov, "output_dir": str(out_dir)})
    assert infer.returncode == 0, infer.stderr[-3000:]
    inputs = sorted((tmp_path / "data" / "nifti" / "test_A").glob("*.nii.gz"))
    outputs = sorted(out_dir.glob("*.nii.gz"))
    assert len(inputs) == len(outputs) == 8
    src, dst = nib.load(inputs[0]), nib.load(outputs[0])
    assert dst.shape == src.shape and np.allclose(dst.affine, src.affine)
    assert 0 <= dst.get_fdata().min() and dst.get_fdata().max() <= 255

    report_dir = tmp_path / "report"
    evaluate = run_bundle("evaluating", "evaluate.json", {**ov, "report_dir": str(report_dir)})
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    metrics = json.loads((report_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert set(metrics) == {"l2", "identity_l2", "mse_ratio"} and metrics["l2"]["n"] == 12
    assert {"report.md", "metrics.csv", "loss_curves.png", "case_0.png", "case_0.gif"} <= {
        p.name for p in report_dir.iterdir()
    }

    # the settings of a preset file survive evaluate.json in either order (MONAI's model-zoo order too)
    preset = tmp_path / "tiny.json"
    orders = {
        "zoo": ["train.json", preset, "evaluate.json"],
        "readme": ["train.json", "evaluate.json", preset],
        "alone": ["evaluate.json", preset],
    }
    for name, files in orders.items():
        preset.write_text(json.dumps({**ov, "report_dir": str(tmp_path / name)}), encoding="utf-8")
        paths = [str(f if isinstance(f, Path) else CONFIGS / f) for f in files]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "monai.bundle",
                "run",
                "evaluating",
                "--config_file",
                json.dumps(paths),
                "--logging_file",
                str(CONFIGS / "logging.conf"),
            ],
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=600,
        )
        assert run.returncode == 0, (name, run.stderr[-3000:])
        again = json.loads((tmp_path / name / "metrics.json").read_text(encoding="utf-8"))["metrics"]
        assert again == metrics, name


def training_workflow(overrides: dict) -> ConfigWorkflow:
    """The vmnist bundle's training workflow with ``overrides``, initialised in process (not yet run)."""
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"),
        workflow_type="train",
        run_id="training",
        logging_file=False,
        meta_file=str(CONFIGS / "metadata.json"),
        **overrides,
    )
    workflow.initialize()
    return workflow


def test_gen_average_epochs_saves_the_mean_of_the_last_epochs_generators(tmp_path):
    """``--gen_average_epochs 2``: ``model.pt`` and ``model_ba.pt`` hold the mean of the generators at the ends of
    the last two epochs (the raw weights of checkpoints 1 and 2), and the checkpoints hold the averages."""
    ov = {**tiny_overrides(tmp_path), "max_epochs": 2, "decay_epochs": 0, "epoch_length": 1, "val_interval": 0}
    workflow = training_workflow({**ov, "gen_average_epochs": 2, "ckpt_n_saved": None})
    handlers = workflow.parser.get_parsed_content("train#handlers")
    average = workflow.parser.get_parsed_content("g_average")  # the handler the checkpoints save, by its index
    assert isinstance(average, GeneratorAverage)
    assert handlers.index(average) < [type(h) for h in handlers].index(TrainingCheckpointer)
    workflow.run()
    models = tmp_path / "models"
    checkpoints = [torch.load(models / f"checkpoint_{it}.pt", weights_only=True) for it in (1, 2)]
    assert all("g_average" in checkpoint for checkpoint in checkpoints)
    for name, file in (("g_ab", "model.pt"), ("g_ba", "model_ba.pt")):
        saved = torch.load(models / file, weights_only=True)
        torch.testing.assert_close(saved, {k: (checkpoints[0][name][k] + checkpoints[1][name][k]) / 2 for k in saved})
    plain = training_workflow({**ov, "ckpt_dir": str(tmp_path / "plain")})
    plain.run()
    assert "g_average" not in torch.load(tmp_path / "plain" / "checkpoint_2.pt", weights_only=True)


@pytest.mark.parametrize("method", ["3d", "seq_const"])
def test_training_on_random_windows_of_the_clips(tmp_path, method):
    """``crop_depth``: the discriminator is built for the window, the const loss splits frames by it, and the
    trained generator still translates whole clips."""
    ov = {**tiny_overrides(tmp_path), "method": method, "crop_depth": 4, "clips_per_batch": 2}
    ov.update({"max_epochs": 1, "decay_epochs": 0, "epoch_length": 2, "val_interval": 1, "num_val_cases": 2})
    workflow = training_workflow(ov)
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.prepare_batch.crop_depth == 4 and trainer.clip_depth == 4
    if method == "3d":
        assert trainer.d_a.input_size == (4, 16, 16)
    workflow.run()
    assert trainer.state.iteration == 2
    generator = workflow.parser.get_parsed_content("translator_ab")
    with torch.no_grad():
        assert generator(torch.zeros(1, 1, 8, 16, 16)).shape == (1, 1, 8, 16, 16)  # whole clips at inference


def test_clip_and_frame_discriminator_trains_through_the_bundle(tmp_path):
    """``d_view clip+frames``: both parts of each discriminator are built for the clips and learn."""
    ov = {**tiny_overrides(tmp_path), "d_view": "clip+frames", "max_epochs": 1, "decay_epochs": 0, "epoch_length": 2}
    workflow = training_workflow({**ov, "val_interval": 0})
    trainer = workflow.parser.get_parsed_content("train#trainer")
    d_a = trainer.d_a
    assert d_a.clip.input_size == (8, 16, 16) and d_a.frame.input_size == (16, 16)
    before = {k: v.clone() for k, v in d_a.state_dict().items() if k.endswith("conv.weight")}
    workflow.run()
    assert trainer.state.iteration == 2
    after = d_a.state_dict()
    assert {k.split(".")[0] for k in before} == {"clip", "frame"}
    assert all(not torch.equal(after[k], v) for k, v in before.items())


def test_resume_flag_continues_a_run(tmp_path):
    ov = {**tiny_overrides(tmp_path), "epoch_length": 2, "val_interval": 10, "log_interval": 1}
    first = run_bundle("training", "train.json", {**ov, "max_epochs": 1, "decay_epochs": 0})
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_bundle("training", "train.json", {**ov, "max_epochs": 2, "decay_epochs": 0}, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert (tmp_path / "models" / "checkpoint_4.pt").is_file()
    logged = (tmp_path / "runs" / "losses.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert [line.split(",")[:2] for line in logged] == [["1", "1"], ["1", "2"], ["2", "3"], ["2", "4"]]


@pytest.mark.parametrize(
    "override, message",
    [
        ({"method": "cnn"}, "config key 'method' is 'cnn'"),
        # the rest are checked in process by test_faults_config.py; through the command line in `make test-all`
        pytest.param({"depth": 0}, "config key 'depth' must be a positive integer", marks=pytest.mark.slow),
        pytest.param({"size": [16, -2]}, "config key 'size' must be a positive integer", marks=pytest.mark.slow),
        pytest.param({"lr": -1.0}, "config key 'lr' must be > 0", marks=pytest.mark.slow),
        pytest.param(
            {"method": "random", "lambda_const": 1.0, "frames_per_batch": 4},
            "'lambda_const' applies to method 'seq_const' only",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bad_config_values_fail_fast(tmp_path, override, message):
    result = run_bundle("training", "train.json", {**tiny_overrides(tmp_path), **override})
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "data").exists()  # failed before any work


def test_inference_on_a_user_folder_leaves_inputs_untouched(tmp_path):
    from mr2ct.networks import ResnetGenerator

    ov = tiny_overrides(tmp_path)
    (tmp_path / "models").mkdir()
    torch.save(ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1).state_dict(), tmp_path / "models" / "model.pt")
    user = tmp_path / "user_in"
    user.mkdir()
    shapes = {"a.nii.gz": (8, 16, 16), "b.nii": (11, 20, 13)}  # any size: the generator pads and crops back
    for name, shape in shapes.items():
        nib.save(
            nib.Nifti1Image(
                np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32), np.diag([0.8, 0.9, 1.5, 1.0])
            ),
            user / name,
        )
    (user / "notes.txt").write_text("not an image")
    before = {p.name: p.read_bytes() for p in user.iterdir()}

    out_dir = tmp_path / "out"
    result = run_bundle("inference", "inference.json", {**ov, "input_dir": str(user), "output_dir": str(out_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before
    assert not (tmp_path / "data").exists()  # no sample data built when the user gives a folder
    for name, shape in shapes.items():
        out = nib.load(out_dir / (name.split(".")[0] + "_toB.nii.gz"))
        assert out.shape == shape and np.allclose(out.affine, np.diag([0.8, 0.9, 1.5, 1.0]))

    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_bundle("inference", "inference.json", {**ov, "input_dir": str(empty), "output_dir": str(out_dir)})
    assert result.returncode != 0 and f"input folder {empty} holds no" in result.stderr


@pytest.mark.slow
def test_coloured_moving_mnist_bundle_end_to_end(tmp_path):
    configs = MMNIST_BUNDLE / "configs"
    ov = {**tiny_overrides(tmp_path), "bundle_root": str(MMNIST_BUNDLE), "size": [28, 28], "digit_size": 14}
    train = run_bundle(
        "training",
        "train.json",
        {**ov, "max_epochs": 1, "decay_epochs": 0, "epoch_length": 2, "val_interval": 1, "num_val_cases": 2},
        configs=configs,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    report_dir = tmp_path / "report"
    evaluate = run_bundle("evaluating", "evaluate.json", {**ov, "report_dir": str(report_dir)}, configs=configs)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    metrics = json.loads((report_dir / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert {
        "shape_l2",
        "intensity_mean",
        "colour_sigma",
        "colour_flicker",
        "gt_colour_flicker",
        "flicker",
        "l2",
    } <= set(metrics)
    assert metrics["gt_colour_flicker"]["mean"] < 6  # the ground truth keeps one colour per video
    out_dir = tmp_path / "out"
    infer = run_bundle("inference", "inference.json", {**ov, "output_dir": str(out_dir)}, configs=configs)
    assert infer.returncode == 0, infer.stderr[-3000:]
    assert nib.load(sorted(out_dir.glob("*.nii.gz"))[0]).shape == (8, 28, 28, 3)
