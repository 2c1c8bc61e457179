"""Multi-process training with torchrun (``configs/multi_gpu_train.json``): 2 CPU processes on the gloo backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from mr2ct.bundle import load_config
from mr2ct.engine import ResumableLoader

from conftest import REPO, VMNIST_BUNDLE
from test_bundle import TINY

BUNDLES = ["vmnist_cyclegan3d", "mmnist_color_cyclegan3d", "mrct_cyclegan3d", "gta_seg2video_cyclegan3d"]
WRITERS = {
    "mr2ct.engine.LossProgressBar",
    "TensorBoardStatsHandler",
    "mr2ct.engine.LossCSVLogger",
    "mr2ct.engine.SampleGridSaver",
    "mr2ct.engine.FinalWeightsSaver",
}


def test_rank_zero_writers_are_marked_where_defined():
    """Every handler of the shared training config that writes is disabled on ranks > 0 where it is defined (so
    reordering handlers cannot make every rank write); each bundle's multi_gpu_train.json only joins the group."""
    handlers = json.loads((REPO / "bundles" / "common" / "configs" / "train.json").read_text())["train"]["handlers"]
    marked = {h["_target_"] for h in handlers if h.get("_disabled_") == "$mr2ct.engine.distributed.get_rank() > 0"}
    assert marked == WRITERS
    for bundle in BUNDLES:
        multi = json.loads((REPO / "bundles" / bundle / "configs" / "multi_gpu_train.json").read_text())
        assert {k for k in multi if not k.startswith("_")} == {"distributed"} and multi["distributed"] is True


def test_resumable_loader_with_distributed_sampler():
    """The data position of a DistributedSampler pass replays exactly after set_epoch (as MONAI's Workflow calls)."""
    from monai.data import DistributedSampler

    data = list(range(20))
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=3)
    loader = ResumableLoader(DataLoader(data, batch_size=2, sampler=sampler))
    sampler.set_epoch(2)
    stream = iter(loader)
    first = [next(stream).tolist() for _ in range(2)]
    state = loader.state_dict()
    rest = [b.tolist() for b in stream]
    resumed = ResumableLoader(DataLoader(data, batch_size=2, sampler=sampler))
    resumed.load_state_dict(state)
    sampler.set_epoch(2)
    assert [b.tolist() for b in resumed] == rest
    assert len(sum(first + rest, [])) == 10  # rank 1's half of the data


def _torchrun(tmp_path, bundle: Path, overrides: dict) -> None:
    """Train ``bundle`` with 2 gloo processes (``train.json`` + ``multi_gpu_train.json``). Each rank writes its
    checkpoints and logs under ``tmp_path/{models,runs}_rank<R>`` (showing who writes) and, after training, its
    ``g_ab`` weights (``g_ab_rank<R>.pt``) and the validation metrics (``metrics_rank<R>.pt``)."""
    configs = bundle / "configs"
    rank_dir = f"os.path.join({str(tmp_path)!r}, '%s_rank' + os.environ['RANK'])"
    test_cfg = tmp_path / "test_overrides.json"
    test_cfg.write_text(
        json.dumps(
            {
                "ckpt_dir": f"${rank_dir} % 'models'",
                "output_dir": f"${rank_dir} % 'runs'",
                "training": [
                    "$@train#trainer.run()",
                    f"$torch.save(@g_ab.state_dict(), {rank_dir} % 'g_ab' + '.pt')",
                    f"$torch.save(dict(@validate#evaluator.state.metrics), {rank_dir} % 'metrics' + '.pt')",
                ],
            }
        )
    )
    files = [str(configs / "train.json"), str(configs / "multi_gpu_train.json"), str(test_cfg)]
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        json.dumps(files),
        "--logging_file",
        str(configs / "logging.conf"),
    ]
    for k, v in {"bundle_root": str(bundle), "dataset_dir": str(tmp_path / "data"), **overrides}.items():
        args += [f"--{k}", json.dumps(v) if isinstance(v, (list, bool)) else str(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        args, capture_output=True, encoding="utf-8", errors="replace", timeout=1200, env=env, cwd=REPO
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


@pytest.mark.parametrize(
    "switches", [{}, pytest.param({"compile": True}, marks=pytest.mark.slow)], ids=["plain", "compile"]
)
def test_torchrun_two_processes_gloo(tmp_path, switches):
    """2 processes train the tiny vmnist bundle with DDP (also with torch.compile of the DDP-wrapped networks):
    identical weights on both ranks, rank 0 alone writes, and model.pt (unwrapped keys) loads into the
    single-process network_def."""
    _torchrun(
        tmp_path,
        VMNIST_BUNDLE,
        {
            **TINY,
            "epoch_length": 2,
            "max_epochs": 1,
            "decay_epochs": 0,
            "num_val_cases": 2,
            "log_interval": 1,
            **switches,
        },
    )

    w0 = torch.load(tmp_path / "g_ab_rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "g_ab_rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    # rank 0 wrote checkpoints, final weights and logs; rank 1 wrote nothing
    assert {"model.pt", "model_ba.pt", "checkpoint_2.pt"} <= {p.name for p in (tmp_path / "models_rank0").iterdir()}
    assert (tmp_path / "runs_rank0" / "losses.csv").is_file()
    assert not (tmp_path / "models_rank1").exists() and not (tmp_path / "runs_rank1").exists()
    # model.pt: the unwrapped generator, the same as on rank 1, loadable into the single-process network_def
    saved = torch.load(tmp_path / "models_rank0" / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], w1[k]) for k in w1) and not any(k.startswith("module.") for k in saved)
    parser = load_config(VMNIST_BUNDLE.name, "inference", overrides={**TINY, "device": "cpu"})
    parser.get_parsed_content("network_def").load_state_dict(saved)


@pytest.mark.slow
def test_torchrun_mrct_channels_last_and_distributed_validation(tmp_path):
    """MR->CT with channels_last under DDP (converted before wrapping): identical weights on both ranks, and the
    validation MAE, computed on 3 cases split 2 + 1 between the ranks, is the same on both ranks and equals a
    single-process validation of the same weights over all 3 cases (the metric gathers across ranks)."""
    from test_mrct_bundle import TINY as MRCT_TINY

    bundle = REPO / "bundles" / "mrct_cyclegan3d"
    _torchrun(
        tmp_path,
        bundle,
        {
            **MRCT_TINY,
            "num_test_subjects": 3,
            "num_val_cases": 3,
            "epoch_length": 2,
            "max_epochs": 1,
            "decay_epochs": 0,
            "val_interval": 1,
            "channels_last": True,
        },
    )
    w0 = torch.load(tmp_path / "g_ab_rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "g_ab_rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    m0, m1 = (torch.load(tmp_path / f"metrics_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert m0 == m1 and set(m0) == {"val_mae_hu"}

    parser = load_config(
        bundle.name,
        overrides={
            **MRCT_TINY,
            "num_test_subjects": 3,
            "num_val_cases": 3,
            "dataset_dir": str(tmp_path / "data"),
            "device": "cpu",
        },
    )
    parser.get_parsed_content("g_ab").load_state_dict(w0)
    evaluator = parser.get_parsed_content("validate#evaluator")
    assert len(parser.get_parsed_content("validate#items")) == 3
    evaluator.run()
    assert evaluator.state.metrics["val_mae_hu"] == pytest.approx(m0["val_mae_hu"], rel=1e-4)
