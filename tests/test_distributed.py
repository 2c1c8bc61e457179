"""Multi-process training with torchrun (``configs/multi_gpu_train.json``): 2 CPU processes on the gloo backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from monai.bundle import ConfigParser
from torch.utils.data import DataLoader

from conftest import REPO, VMNIST_BUNDLE
from test_bundle import TINY

from mr2ct.engine import ResumableLoader

BUNDLES = ["vmnist_cyclegan3d", "mmnist_color_cyclegan3d", "mrct_cyclegan3d", "gta_seg2video_cyclegan3d"]
WRITERS = {"mr2ct.engine.LossProgressBar", "TensorBoardStatsHandler", "mr2ct.engine.LossCSVLogger",
           "mr2ct.engine.SampleGridSaver", "mr2ct.engine.FinalWeightsSaver"}


def test_multi_gpu_configs_match_train_handlers():
    """Each bundle's multi_gpu_train.json disables exactly the writing handlers on ranks > 0 (by list index)."""
    for bundle in BUNDLES:
        configs = REPO / "bundles" / bundle / "configs"
        handlers = json.loads((configs / "train.json").read_text())["train"]["handlers"]
        multi = json.loads((configs / "multi_gpu_train.json").read_text())
        disabled = {int(k.split("#")[2]) for k in multi if k.startswith("train#handlers#") and k.endswith("_disabled_")}
        assert disabled == {i for i, h in enumerate(handlers) if h["_target_"] in WRITERS}, bundle
        checkpointer = [i for i, h in enumerate(handlers) if h["_target_"] == "mr2ct.engine.TrainingCheckpointer"]
        assert multi[f"train#handlers#{checkpointer[0]}#_target_"].endswith("DistributedCheckpointer"), bundle


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


def test_torchrun_two_processes_gloo(tmp_path):
    """2 processes train the tiny vmnist bundle with DDP: identical weights on both ranks, rank 0 alone writes,
    and model.pt (unwrapped keys) loads into the single-process network_def."""
    configs = VMNIST_BUNDLE / "configs"
    # per-rank output folders show who writes; each rank dumps g_ab after training for the comparison
    rank_dir = "os.path.join(%r, '%%s_rank' + os.environ['RANK'])" % str(tmp_path)
    test_cfg = tmp_path / "test_overrides.json"
    test_cfg.write_text(json.dumps({
        "ckpt_dir": f"${rank_dir} % 'models'",
        "output_dir": f"${rank_dir} % 'runs'",
        "training": ["$@train#trainer.run()",
                     f"$torch.save(@g_ab.state_dict(), os.path.join({str(tmp_path)!r}, 'g_ab_rank' + os.environ['RANK'] + '.pt'))"],
    }))
    overrides = {**TINY, "bundle_root": str(VMNIST_BUNDLE), "dataset_dir": str(tmp_path / "data"),
                 "epoch_length": 2, "max_epochs": 1, "decay_epochs": 0, "num_val_cases": 2, "log_interval": 1}
    files = [str(configs / "train.json"), str(configs / "multi_gpu_train.json"), str(test_cfg)]
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
            "-m", "monai.bundle", "run", "training", "--config_file", json.dumps(files),
            "--logging_file", str(configs / "logging.conf")]
    for k, v in overrides.items():
        args += [f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace", timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

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
    parser = ConfigParser()
    parser.read_config(configs / "inference.json")
    parser.update({**TINY, "bundle_root": str(VMNIST_BUNDLE), "device": "cpu"})
    parser.get_parsed_content("network_def").load_state_dict(saved)
