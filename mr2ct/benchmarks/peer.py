"""Our training step beside a peer's, in one run: ``mr2ct bench --peer ganslate``.

The peer is ganslate (PyPI ``ganslate`` 0.1.1: ``Resnet3D`` generators, ``PatchGAN3D`` discriminators) doing
the work of our step (see :mod:`mr2ct.benchmarks.ganslate_worker`), in its own process and its own virtual
environment, created on first use under ``--peer-dir`` (default ``$MR2CT_PEER_DIR`` or
``~/.cache/mr2ct/peers``; never inside the repository, never a dependency of mr2ct): ``torch==2.13.0`` first,
pinned (the CPU wheel), then ``pip install --no-deps ganslate==0.1.1 loguru omegaconf memcnn
antlr4-python3-runtime==4.9.3`` and ``monai``, ``pyyaml``.

ganslate's Resnet3D fixes 64 base channels (compare at ngf 64) and its PatchGAN3D needs a depth >= 32. The
table gives each step's median seconds, its speed as a ratio to ganslate's (ganslate time / ours: > 1 faster),
the achieved TFLOP/s (each model's own convolutions counted by ``FlopCounterMode``; our optimised step is
credited with our reference's count) and its share of this CPU's own peak, measured in the same run by a plain
fp32 and bf16 matrix multiplication (the bf16 peak for a bf16 step), and the peak memory (RSS rise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

__all__ = ["GANSLATE_PACKAGES", "PEERS", "check_peer_specs", "ensure_ganslate", "matmul_peak", "peer_dir", "run_peer"]

PEERS = ("ganslate",)
TORCH_PIN = "torch==2.13.0"
GANSLATE_PACKAGES = ("ganslate==0.1.1", "loguru", "omegaconf", "memcnn", "antlr4-python3-runtime==4.9.3")
PEER_SHAPES = ("32x64x64:1:64:9", "32x84x84:1:64:9")
_IMPORT_CHECK = "import ganslate.configs.base; from ganslate.nn.generators import Resnet3D; import torch"


def peer_dir(root: str | os.PathLike | None = None) -> Path:
    """Where peers' virtual environments live: ``root``, ``$MR2CT_PEER_DIR`` or ``~/.cache/mr2ct/peers``."""
    return Path(root or os.environ.get("MR2CT_PEER_DIR") or Path.home() / ".cache" / "mr2ct" / "peers")


def check_peer_specs(peer: str, specs: list[dict], device: str) -> None:
    """``ValueError`` for what the peer cannot compare: an unknown peer, a GPU, ngf other than 64, depth < 32."""
    if peer not in PEERS:
        raise ValueError(f"unknown --peer {peer!r}; choose from {', '.join(PEERS)}.")
    if torch.device(device).type != "cpu":
        raise ValueError("--peer runs on the CPU only (--device cpu).")
    for spec in specs:
        name = "x".join(map(str, spec["shape"]))
        if spec["ngf"] != 64:
            raise ValueError(
                f"shape {name}: ganslate's Resnet3D fixes 64 base channels; give ngf 64, not {spec['ngf']}."
            )
        if spec["shape"][0] < 32:
            raise ValueError(f"shape {name}: ganslate's PatchGAN3D needs a depth >= 32, got {spec['shape'][0]}.")


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_ganslate(root: str | os.PathLike | None = None, log=print) -> Path:
    """The Python of ganslate's virtual environment, created (and filled) when it does not import ganslate."""
    venv = peer_dir(root) / "ganslate"
    python = _python(venv)
    ok = python.exists() and subprocess.run([python, "-c", _IMPORT_CHECK], capture_output=True).returncode == 0
    if ok:
        return python
    repository = Path(__file__).resolve().parents[2]
    if venv.resolve().is_relative_to(repository):
        raise ValueError(f"{venv} is inside the repository {repository}: give a --peer-dir outside it.")
    log(f"creating ganslate's virtual environment in {venv} (once)", flush=True)
    steps: list[list] = [
        [sys.executable, "-m", "venv", str(venv)],
        [python, "-m", "pip", "install", "--quiet", TORCH_PIN],
        [python, "-m", "pip", "install", "--quiet", "--no-deps", *GANSLATE_PACKAGES],
        [python, "-m", "pip", "install", "--quiet", "monai", "pyyaml", TORCH_PIN],
    ]
    for command in steps:
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"could not build ganslate's environment: {' '.join(map(str, command))}\n{proc.stderr[-3000:]}"
            )
    check = subprocess.run([python, "-c", _IMPORT_CHECK], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"ganslate's environment in {venv} does not import ganslate:\n{check.stderr[-3000:]}")
    return python


def run_peer(python: Path, spec: dict, warmup: int, repeats: int, threads: int = 0) -> dict:
    """ganslate's step at ``spec`` in its own process (``python`` of its environment); the worker's JSON."""
    job = {"shape": list(spec["shape"]), "channels": spec["channels"], "blocks": spec["blocks"]}
    job |= {"warmup": warmup, "repeats": repeats, "threads": threads}
    worker = Path(__file__).with_name("ganslate_worker.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of mr2ct's environment
    proc = subprocess.run([python, str(worker), json.dumps(job)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"ganslate's step failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """This CPU's TFLOP/s on a plain ``n x n`` matrix multiplication in ``dtype`` (the best of ``repeats``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12
