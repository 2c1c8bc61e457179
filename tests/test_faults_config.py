"""Configs are validated before any work: unknown keys (typos in overrides), unknown methods and directions,
impossible shapes, bad flags and missing paths are refused with a one-line message naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from monai.bundle import ConfigParser, ConfigWorkflow

from mr2ct.bundle import (
    TRACEBACK_VARIABLE,
    CycleGANSettings,
    VideoSettings,
    check_config_keys,
    concise_errors,
    input_error,
    load_config,
    parse_flag,
)
from mr2ct.data.datasets import root_cause

from conftest import REPO

BUNDLE_NAMES = ("mrct_cyclegan3d", "vmnist_cyclegan3d", "mmnist_color_cyclegan3d")
WORKFLOWS = {
    "train.json": ("train", "training"),
    "inference.json": ("infer", "inference"),
    "evaluate.json": ("infer", "evaluating"),
}


def configs(bundle: str) -> Path:
    return REPO / "bundles" / bundle / "configs"


def initialize(tmp: Path, bundle: str, config: str, **overrides) -> BaseException | None:
    """Initialize (and run, if that passes) one workflow with outputs under ``tmp``; the root cause of its error."""
    workflow_type, run_id = WORKFLOWS[config]
    ov = {
        "bundle_root": str(REPO / "bundles" / bundle),
        "dataset_dir": str(tmp / "data"),
        "ckpt_dir": str(tmp / "models"),
        "output_dir": str(tmp / "out"),
        **overrides,
    }
    workflow = ConfigWorkflow(
        config_file=str(configs(bundle) / config),
        workflow_type=workflow_type,
        run_id=run_id,
        meta_file=str(configs(bundle) / "metadata.json"),
        logging_file=False,
        **ov,
    )
    try:
        workflow.initialize()
        workflow.run()
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the test looks at what it was
        return root_cause(e)
    return None


ALL_CONFIGS = [(b, c) for b in BUNDLE_NAMES for c in WORKFLOWS]


@pytest.mark.parametrize("bundle, config", ALL_CONFIGS)
@pytest.mark.parametrize("quick", [False, True], ids=["paper", "quick"])
def test_shipped_configs_pass_their_own_checks(bundle, config, quick):
    """The first ``initialize`` step (layers, key check, settings check) accepts every shipped config."""
    parser = ConfigParser()
    parser.read_config([configs(bundle) / config] + ([configs(bundle) / "quick.json"] if quick else []))
    parser.read_meta(configs(bundle) / "metadata.json")
    assert parser["initialize"][0] == f"$mr2ct.bundle.complete('{bundle}', '{config.split('.')[0]}')"
    parser.get_parsed_content("initialize#0")
    assert "network_def" in parser.get() and parser["bundle_name"] == bundle  # layered in


@pytest.mark.parametrize("bundle, config", ALL_CONFIGS)
@pytest.mark.parametrize(
    "typo, hint", [("max_epoch", "max_epochs"), ("learning_rate", "lr"), ("ngfs", "ngf"), ("overwrit", "overwrite")]
)
def test_unknown_keys_are_refused_before_any_work(tmp_path, bundle, config, typo, hint):
    error = initialize(tmp_path, bundle, config, **{typo: 3})
    assert isinstance(error, ValueError), error
    assert str(error).startswith(f"unknown config key(s) '{typo}' (did you mean '{hint}'?)") and "\n" not in str(error)
    assert list(tmp_path.iterdir()) == []  # nothing built, loaded or written


@pytest.mark.parametrize("bundle, config", ALL_CONFIGS)
def test_keys_of_any_workflow_are_accepted(tmp_path, bundle, config):
    """One set of overrides serves every workflow (like quick.json): a key of another config file is no typo.

    (A bad method stops the run at the settings check, the item after the key check.)"""
    keys_of_other_workflows = {"ndf": 8, "overwrite": False, "num_eval_cases": 2}  # train / inference / evaluate
    error = initialize(tmp_path, bundle, config, **keys_of_other_workflows, method="none")
    assert isinstance(error, ValueError) and "config key 'method' is 'none'" in str(error), error


MRCT, VMNIST, MMNIST = BUNDLE_NAMES
GTA = "gta_seg2video_cyclegan3d"
# (bundle, config, overrides, message): each refused by the checks at the start of the workflow
BAD_VALUES = [
    (MRCT, "train.json", {"method": "cnn"}, "config key 'method' is 'cnn'; choose one of 3d, random"),
    (MRCT, "inference.json", {"method": "cnn"}, "config key 'method' is 'cnn'"),
    (MRCT, "evaluate.json", {"method": "cnn"}, "config key 'method' is 'cnn'"),
    (VMNIST, "inference.json", {"method": "cnn"}, "config key 'method' is 'cnn'"),
    (MMNIST, "evaluate.json", {"method": "cnn"}, "config key 'method' is 'cnn'"),
    (MRCT, "inference.json", {"direction": "mr2pet"}, "config key 'direction' is 'mr2pet'; choose one of mr2ct, ct2mr"),
    (MRCT, "inference.json", {"direction": "a2b"}, "config key 'direction' is 'a2b'"),
    (VMNIST, "inference.json", {"direction": "mr2ct"}, "config key 'direction' is 'mr2ct'; choose one of a2b, b2a"),
    (MMNIST, "evaluate.json", {"direction": "b2c"}, "config key 'direction' is 'b2c'"),
    (VMNIST, "train.json", {"adversarial": "wgan"}, "config key 'adversarial' is 'wgan'"),
    (MMNIST, "train.json", {"structure_channels": "max"}, "config key 'structure_channels' is 'max'; choose one of"),
    (GTA, "train.json", {"gen_upsample": "pixelshuffle"}, "config key 'gen_upsample' is 'pixelshuffle'"),
    (MMNIST, "train.json", {"method": "random", "frames_per_batch": None}, "'frames_per_batch' must be a positive"),
    (VMNIST, "train.json", {"lr": -1.0}, "config key 'lr' must be > 0"),
    (
        VMNIST,
        "train.json",
        {"method": "random", "lambda_const": 1.0, "frames_per_batch": 4},
        "'lambda_const' applies to method 'seq_const' only",
    ),
    (
        MMNIST,
        "train.json",
        {"method": "random", "lambda_warp": 1.0},
        "config key 'lambda_warp' needs frames in temporal order (methods 3d, sequential, seq_const)",
    ),
    (MMNIST, "train.json", {"lambda_warp": -1.0}, "config key 'lambda_warp' must be"),
    (MMNIST, "train.json", {"warp_warmup": -5}, "config key 'warp_warmup' must be"),
    (MMNIST, "train.json", {"lambda_chroma": -1.0}, "config key 'lambda_chroma' must be"),
    (
        MMNIST,
        "train.json",
        {"chroma_affinity": "hue"},
        "config key 'chroma_affinity' is 'hue'; choose one of intensity, colour.",
    ),
    (
        MMNIST,
        "train.json",
        {"warp_mask": "edges"},
        "config key 'warp_mask' is 'edges'; choose one of occlusion, photometric.",
    ),
    # impossible shapes
    (
        MRCT,
        "train.json",
        {"gen_strides": [1, 2, 2], "volume_size": [3, 32, 32]},
        "config key 'volume_size' is [3, 32, 32]: with gen_strides [1, 2, 2] and gen_outer_kernel [7, 7, 7] the "
        "generator needs >= [4, 1, 1] there",
    ),
    (MRCT, "inference.json", {"volume_size": [30, 256]}, "config key 'volume_size' must be a list of 3 sizes"),
    (MRCT, "evaluate.json", {"volume_size": [8, -32, 32]}, "config key 'volume_size' must be a positive integer"),
    (MRCT, "train.json", {"method": "sequential", "gen_strides": 1, "volume_size": [30, 3, 32]}, "needs >= [4, 4]"),
    (VMNIST, "train.json", {"gen_strides": [1, 2, 2], "depth": 3}, "config key 'depth' is 3: with gen_strides"),
    (MMNIST, "train.json", {"gen_outer_kernel": [3, 7]}, "config key 'gen_outer_kernel' must be an odd positive"),
    (MMNIST, "train.json", {"d_view": "time"}, "config key 'd_view' is 'time'; choose one of clip, frames, clip+f"),
    (MMNIST, "train.json", {"gen_conv": "1+2d"}, "config key 'gen_conv' is '1+2d'; choose one of full, 2+1d"),
    (GTA, "train.json", {"train_flip": "sometimes"}, "config key 'train_flip' must be true or false, got 'some"),
    (GTA, "train.json", {"lambda_cycle": [10, -1]}, "config key 'lambda_cycle' must be a number >= 0, or two of"),
    (MRCT, "train.json", {"lambda_cycle": [10, 5, 1]}, "config key 'lambda_cycle' must be a number >= 0, or two"),
    (VMNIST, "train.json", {"method": "random", "gen_conv": "2+1d"}, "config key 'gen_conv' is '2+1d', which fac"),
    (VMNIST, "train.json", {"gen_outer_kernel": 6}, "config key 'gen_outer_kernel' must be an odd positive"),
    (VMNIST, "train.json", {"gen_sampling_kernel": [3, 2, 3]}, "config key 'gen_sampling_kernel' must be an odd"),
    (
        MMNIST,
        "train.json",
        {"gen_strides": 2, "gen_sampling_kernel": [1, 3, 3]},
        "config key 'gen_sampling_kernel' is [1, 3, 3]: along the axes that gen_strides [2, 2, 2] strides it must be "
        ">= 3 (a 1-wide stride-2 convolution skips every other voxel)",
    ),
    (
        MMNIST,
        "train.json",
        {"gen_strides": [1, 2, 2], "gen_outer_kernel": [1, 7, 7], "crop_depth": 1},
        "config key 'crop_depth' is 1: with gen_strides [1, 2, 2] and gen_outer_kernel [1, 7, 7] the generator needs "
        ">= [2] there (an unstrided axis needs more voxels than half its outer kernel: lower the kernel or stride it)",
    ),
    (MMNIST, "train.json", {"crop_depth": 40}, "config key 'crop_depth' is 40, more than the clips' depth (30"),
    (MMNIST, "train.json", {"crop_depth": 0}, "config key 'crop_depth' must be a positive integer"),
    (VMNIST, "inference.json", {"gen_strides": 1, "size": [84, 2]}, "config key 'size' is [84, 2]: with gen_s"),
    (VMNIST, "evaluate.json", {"size": [84]}, "config key 'size' must be a list of 2 sizes"),
    (MMNIST, "train.json", {"size": [-28, 28]}, "config key 'size' must be a positive integer, got -28"),
    (MMNIST, "inference.json", {"depth": 0}, "config key 'depth' must be a positive integer"),
    (MMNIST, "train.json", {"channels": 0}, "config key 'channels' must be a positive integer"),
    (VMNIST, "train.json", {"gen_strides": 3}, "config key 'gen_strides' must be 1 or 2"),
    (MRCT, "inference.json", {"gen_strides": [1, 2]}, "a list of 3 of them"),
    (VMNIST, "train.json", {"num_res_blocks": -1}, "config key 'num_res_blocks' must be an integer >= 0"),
    (MRCT, "train.json", {"decay_epochs": 500}, "config key 'decay_epochs' must be in [0, max_epochs]"),
    (GTA, "train.json", {"gen_average_epochs": 500}, "config key 'gen_average_epochs' must be in [0, max_epochs]"),
    # flags given as text on the command line
    (MRCT, "inference.json", {"overwrite": "yes"}, "config key 'overwrite' must be true or false, got 'yes'"),
    (VMNIST, "inference.json", {"overwrite": 1}, "config key 'overwrite' must be true or false"),
    (MRCT, "evaluate.json", {"amp": "maybe"}, "config key 'amp' must be true or false"),
    (MRCT, "train.json", {"resume": "maybe"}, "config key 'resume' must be true or false"),
    (VMNIST, "train.json", {"max_nonfinite_steps": -1}, "config key 'max_nonfinite_steps' must be null or an integer"),
    # performance switches
    (MRCT, "train.json", {"amp_dtype": "float8"}, "config key 'amp_dtype' must be 'bfloat16' or 'float16'"),
    (VMNIST, "train.json", {"channels_last": "on"}, "config key 'channels_last' must be true or false, got 'on'"),
    (MMNIST, "train.json", {"checkpoint_blocks": 1}, "config key 'checkpoint_blocks' must be true or false"),
    (GTA, "train.json", {"compile": "yes"}, "config key 'compile' must be true or false"),
    (GTA, "train.json", {"fused_adam": "maybe"}, "config key 'fused_adam' must be true or false"),
    (MRCT, "train.json", {"cudnn_benchmark": "auto"}, "config key 'cudnn_benchmark' must be true or false"),
    (MRCT, "inference.json", {"amp_dtype": "half"}, "config key 'amp_dtype' must be 'bfloat16' or 'float16'"),
    (MRCT, "inference.json", {"sw_batch_size": 0}, "config key 'sw_batch_size' must be a positive integer"),
    (MRCT, "inference.json", {"sw_overlap": 1.0}, "config key 'sw_overlap' must be a number in [0, 1)"),
    # training data cache
    (MRCT, "train.json", {"cache": "ram"}, "config key 'cache' is 'ram'; choose one of memory, disk, none"),
    (VMNIST, "train.json", {"cache": "Disk"}, "config key 'cache' is 'Disk'; choose one of memory, disk, none"),
    # missing paths
    (
        MRCT,
        "train.json",
        {"mr_dir": "/no/such/mr", "ct_dir": "/no/such/ct"},
        "config key 'mr_dir': /no/such/mr does not",
    ),
    (
        MRCT,
        "train.json",
        {"datalist": "/no/such/list.json"},
        "config key 'datalist': /no/such/list.json does not exist",
    ),
    (MRCT, "train.json", {"val_mask_dir": "/no/such/mask"}, "config key 'val_mask_dir'"),
    (MRCT, "evaluate.json", {"ct_dir": "/no/such/ct"}, "config key 'ct_dir': /no/such/ct does not exist"),
    (MRCT, "inference.json", {"input_dir": "/no/such/in"}, "config key 'input_dir': /no/such/in does not exist"),
    (VMNIST, "train.json", {"images_idx": "/no/such.idx"}, "config key 'images_idx': /no/such.idx does not exist"),
    (MMNIST, "evaluate.json", {"labels_idx": "/no/such.idx"}, "config key 'labels_idx'"),
    (VMNIST, "inference.json", {"input_dir": "/no/such/in"}, "config key 'input_dir': /no/such/in does not exist"),
    (MMNIST, "inference.json", {"input_dir": "/no/such/in"}, "config key 'input_dir'"),
    (MRCT, "evaluate.json", {"load_path": "/no/such/model.pt"}, "no trained weights at /no/such/model.pt"),
    (VMNIST, "evaluate.json", {"load_path": "/no/such/model.pt"}, "no trained weights at /no/such/model.pt"),
    (MMNIST, "inference.json", {"input_dir": "@dataset_dir", "load_path": "/no/such/model.pt"}, "no trained weights"),
]


@pytest.mark.parametrize(
    "bundle, config, overrides, message",
    BAD_VALUES,
    ids=[f"{b.split('_')[0]}-{c.split('.')[0]}-{'-'.join(o)}" for b, c, o, _ in BAD_VALUES],
)
def test_bad_values_are_refused_before_any_work(tmp_path, bundle, config, overrides, message):
    if overrides.get("input_dir") == "@dataset_dir":  # an existing input folder, so the weights are looked for
        (tmp_path / "data").mkdir()
    error = initialize(tmp_path, bundle, config, **overrides)
    assert isinstance(error, (ValueError, FileNotFoundError)), error
    assert message in str(error) and "\n" not in str(error), str(error)
    assert {p.name for p in tmp_path.iterdir()} <= {"data"} and not any((tmp_path / "data").glob("*"))


def test_unknown_key_from_the_command_line(tmp_path):
    """As users see it: ``python -m monai.bundle run`` and ``mr2ct`` fail at once, naming the key."""
    b = configs(VMNIST)
    common = ["--dataset_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "runs")]
    monai_run = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            f"['{b / 'train.json'}','{b / 'quick.json'}']",
            "--logging_file",
            str(b / "logging.conf"),
            "--max_epoch",
            "3",
            *common,
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        check=False,
        timeout=300,
    )
    assert monai_run.returncode != 0
    assert "unknown config key(s) 'max_epoch' (did you mean 'max_epochs'?)" in monai_run.stderr
    cli = subprocess.run(
        [sys.executable, "-m", "mr2ct.cli", "train", VMNIST, "--quick", "--learning_rate", "0.1", *common],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        check=False,
        timeout=300,
        cwd=REPO,
    )
    assert cli.returncode != 0
    assert "unknown config key(s) 'learning_rate' (did you mean 'lr'?)" in cli.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def _wrapped_by_monai(cause: Exception) -> RuntimeError:
    """``cause`` as MONAI's config parser re-raises it from a config expression."""
    try:
        try:
            raise cause
        except Exception as e:
            raise RuntimeError("Failed to evaluate ConfigExpression: '$check()'") from e
    except RuntimeError as wrapped:
        return wrapped


def test_input_errors_of_a_bundle_command_are_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)  # restored after the test
    monkeypatch.delenv(TRACEBACK_VARIABLE, raising=False)
    concise_errors()
    bad = _wrapped_by_monai(FileNotFoundError("no trained weights at /x/model.pt:\npass --ckpt_dir"))
    sys.excepthook(RuntimeError, bad, bad.__traceback__)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "error: no trained weights at /x/model.pt: pass --ckpt_dir",
        f"(set {TRACEBACK_VARIABLE}=1 for the full traceback)",
    ]
    bug = _wrapped_by_monai(TypeError("unsupported operand"))  # not an input error: the whole traceback
    sys.excepthook(RuntimeError, bug, bug.__traceback__)
    shown = capsys.readouterr().err
    assert "Traceback" in shown and "TypeError: unsupported operand" in shown and "error:" not in shown
    assert input_error(bug) is None and input_error(ValueError("not wrapped")) is None
    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    sys.excepthook(RuntimeError, bad, bad.__traceback__)
    assert "Traceback" in capsys.readouterr().err
    hook = sys.excepthook
    concise_errors()  # installing twice keeps one hook
    assert sys.excepthook is hook


def test_check_config_keys_needs_a_config():
    with pytest.raises(RuntimeError, match="inside a bundle config expression"):
        check_config_keys(VMNIST)


def test_settings_and_flags():
    for ok in (True, False, "true", "FALSE", "False"):
        assert parse_flag("overwrite", ok) is (str(ok).lower() == "true")
    for bad in ("yes", 1, None, "1"):
        with pytest.raises(ValueError, match="config key 'overwrite' must be true or false"):
            parse_flag("overwrite", bad)
    for steps in (None, 0, 5):  # training's limit of consecutive non-finite steps
        assert CycleGANSettings.check({"max_nonfinite_steps": steps}).max_nonfinite_steps == steps
    for steps in (-1, "3", 2.5, True):
        with pytest.raises(ValueError, match="config key 'max_nonfinite_steps' must be null or an integer >= 0"):
            CycleGANSettings.check({"max_nonfinite_steps": steps})
    VideoSettings.check({"method": "sequential", "depth": 1, "size": [4, 4], "gen_strides": [2, 1]})  # 2D: any length
    assert CycleGANSettings.check({"amp": "TRUE"}).amp is True  # flags typed on the command line are normalised
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['sizes'\]"):
        CycleGANSettings.check({"sizes": [4, 4]})


def test_layers_fill_what_the_bundle_does_not_set():
    """A bundle's config keeps its own values at any depth; the rest comes from the shared layers."""
    parser = load_config(VMNIST, overrides={"ngf": 8, "train#trainer#pool_size": 3})
    assert parser["ngf"] == 8 and parser["train#trainer#pool_size"] == 3  # overrides, nested ones too
    assert parser["depth"] == 30 and parser["lr"] == 0.0002  # the bundle's, then the common layer's
    assert parser["train#dataset#_target_"] == "mr2ct.data.UnpairedDataset"  # the clips layer's
    assert parser["imports"][:2] == ["$import mr2ct", "$import mr2ct.bundle"] and "$import torch" in parser["imports"]
    evaluation = load_config(MRCT, "evaluate", files=[configs(MRCT) / "quick.json"])
    assert evaluation["evaluator#_target_"] == "SupervisedEvaluator" and evaluation["ngf"] == 8
    inference = load_config(GTA, "inference")
    assert inference["evaluator#_target_"] == "mr2ct.engine.VideoTranslator"
    assert "key_val_metric" not in inference["evaluator"]  # a component of another _target_ replaces, not merges


def test_bundle_files_never_come_from_the_current_directory(tmp_path, monkeypatch):
    """An unpacked data folder that holds a ``transforms/mrct.json`` or ``bundles/<name>/`` with ``"$"``
    expressions is not executed: the repository's own files are used unless a path is given explicitly."""
    trap = tmp_path / "executed"
    hostile = {"keys": ["image"], "load": [f"$open({str(trap)!r}, 'w').close()"]}
    (tmp_path / "transforms").mkdir()
    (tmp_path / "transforms" / "mrct.json").write_text(json.dumps(hostile), encoding="utf-8")
    for name in BUNDLE_NAMES:
        (tmp_path / "bundles" / name / "configs").mkdir(parents=True)
        (tmp_path / "bundles" / name / "configs" / "metadata.json").write_text("{}", encoding="utf-8")
        (tmp_path / "bundles" / name / "configs" / "train.json").write_text(json.dumps({"x": hostile["load"][0]}))
    monkeypatch.chdir(tmp_path)
    from mr2ct.bundle import bundle_root, shared_transforms

    assert bundle_root(MRCT) == str(REPO / "bundles" / MRCT)
    assert shared_transforms("mrct.json", ["load"], keys=["image"])  # the repository's chain
    load_config(MRCT).get_parsed_content("network_def")
    assert not trap.exists()
    with pytest.raises(FileNotFoundError, match="no bundle 'nope'"):
        bundle_root("nope")
    explicit = tmp_path / "mine.json"  # a path given explicitly is used
    explicit.write_text(json.dumps({"keys": ["image"], "load": []}), encoding="utf-8")
    assert shared_transforms(str(explicit), ["load"]) == []
