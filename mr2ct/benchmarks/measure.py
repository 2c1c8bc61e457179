"""What every benchmark measures the same way: the machine, peak memory, FLOPs, and a variant run in its own
process."""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "BF16_PEAK_TFLOPS",
    "PeakMemory",
    "add_common_arguments",
    "append_markdown",
    "check_device",
    "comparison_cells",
    "count_flops",
    "device_name",
    "format_bytes",
    "peak_tflops",
    "run_isolated",
    "synchronize",
]

# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from the vendors' data sheets, matched in this order
# against ``torch.cuda.get_device_name`` (a substring, case-insensitive). Unknown GPUs: pass ``--peak-tflops``.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("GH200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("A6000", 154.8),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
)


def peak_tflops(device: str | torch.device) -> float | None:
    """The dense bf16 peak TFLOP/s of a CUDA ``device`` from :data:`BF16_PEAK_TFLOPS`; None for the CPU or an
    unlisted GPU."""
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name(torch.device(device)).lower()
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key.lower() in name), None)


def device_name(device: str | torch.device) -> str:
    """The GPU's name, or ``"CPU xN (model)"`` with the number of torch threads."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"CPU x{torch.get_num_threads()} ({model})"


def synchronize(device: str | torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def format_bytes(n: int) -> str:
    """``"1.23 GiB"`` from 1 GiB up, else ``"45 MiB"``."""
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.0f} MiB"


def _proc_status(field: str) -> int | None:
    """``VmRSS``/``VmHWM`` of this process in bytes (Linux), None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """The peak memory of the work inside ``with PeakMemory(device) as memory:``, in ``memory.peak`` (bytes).

    On CUDA: ``torch.cuda.max_memory_allocated`` (every tensor allocated on the GPU: weights, gradients,
    optimizer state, activations, batches), from a reset at entry. On the CPU (Linux): the process's peak resident
    memory (``VmHWM``, reset at entry through ``/proc/self/clear_refs``) above its resident memory at entry, which
    also counts allocator caching and freed-but-unreturned pages; elsewhere ``peak`` is None.
    ``memory.kind`` names the measure (``"cuda allocated"`` or ``"RSS rise"``).
    """

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        self.kind = "cuda allocated" if self.device.type == "cuda" else "RSS rise"
        self.peak: int | None = None
        self._base: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = 0
        else:
            self._base = _proc_status("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            except OSError:
                self._base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._base is not None:
            hwm = _proc_status("VmHWM")
            self.peak = None if hwm is None else hwm - self._base


def count_flops(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn()`` under PyTorch's ``FlopCounterMode``; returns its result and the floating-point operations of
    its matrix multiplications and convolutions, forward and backward (2 per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with counter:
        result = fn()
    return result, int(counter.get_total_flops())


def documented_parser(module: str, prog: str) -> argparse.ArgumentParser:
    """An argument parser for the benchmark ``module``: its docstring's first paragraph is the description, the
    rest (commands, what is measured) the epilog, printed as written."""
    doc = sys.modules[module].__doc__ or ""
    summary, _, details = doc.partition("\n\n")
    return argparse.ArgumentParser(
        prog=prog, description=summary, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=details
    )


def read_job(job_json: str) -> dict:
    """The job a worker of :func:`run_isolated` was given (JSON), after applying the torch thread count it names
    (its ``threads`` key, removed; 0 or None leaves torch's default)."""
    job = json.loads(job_json)
    threads = job.pop("threads")
    if threads:
        torch.set_num_threads(threads)
    return job


def run_isolated(module: str, job: dict, what: str) -> dict:
    """``python -m module --worker JOB`` in a fresh process (its own peak memory, caches, compiled code); returns
    the JSON object the worker prints last. ``what`` names the variant in the error of a failed worker."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed ({what}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def append_markdown(path: str | Path, title: str, command: str, table: list[str], footer: str) -> None:
    """Append a section (``## title (date, torch version)``, the command and the table in a code block, the
    footer) to the markdown file ``path`` (created if missing)."""
    section = [
        f"\n## {title} ({datetime.date.today().isoformat()}, torch {torch.__version__})\n",
        "```",
        f"$ {command}",
        *table,
        "```",
        "",
        footer,
        "",
    ]
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(section))


def comparison_cells(result: dict, reference: dict, peak: float | None = None) -> dict[str, str]:
    """The table cells that compare a variant's ``result`` with the ``reference`` (both from a ``measure``):
    ``tflops`` (the reference's FLOPs over the variant's median time, with the share of ``peak`` TFLOP/s when
    known), ``memory`` (the variant's peak), ``speedup`` (reference / variant time) and ``memory_ratio``
    (variant / reference peak)."""
    tflops = "-"
    if reference["flops"]:
        achieved = reference["flops"] / result["median"] / 1e12
        tflops = f"{achieved:.3g}" + (f" ({achieved / peak:.0%})" if peak else "")
    return {
        "tflops": tflops,
        "memory": format_bytes(result["peak"]) if result["peak"] is not None else "-",
        "speedup": f"{reference['median'] / result['median']:.2f}x",
        "memory_ratio": f"{result['peak'] / reference['peak']:.2f}" if result["peak"] and reference["peak"] else "-",
    }


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every side-by-side benchmark has: device, threads, warm-up, repeats, the GPU's peak, in-process,
    markdown output (and the hidden ``--worker`` of :func:`run_isolated`)."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (their median is reported)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in the built-in list")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every variant in this process (faster to start; on the CPU the later variants' "
        "peak memory is then understated)",
    )
    parser.add_argument("--markdown", metavar="FILE", help="append a section with the command and table to FILE")
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def check_device(parser: argparse.ArgumentParser, args: argparse.Namespace, amp: bool) -> None:
    """Usage errors for a CUDA device torch cannot see, fp16 autocast off CUDA, and bad repeat counts."""
    if args.warmup < 0 or args.repeats < 1:
        parser.error("--warmup must be >= 0 and --repeats >= 1.")
    cuda = torch.device(args.device).type == "cuda"
    if amp and args.amp_dtype == "float16" and not cuda:
        parser.error("--amp-dtype float16 needs a CUDA device.")
    if cuda and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available to torch {torch.__version__}.")
