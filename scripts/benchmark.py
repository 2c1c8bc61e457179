"""Time one CycleGAN training step (both generator and discriminator updates): the plain fp32 reference and a
step with performance switches, side by side, at one or more shapes.

Usage::

    python scripts/benchmark.py --device cuda --opt amp,channels_last,fused_adam,cudnn_benchmark
    python scripts/benchmark.py --device cpu --shapes quick --opt channels_last,fused_adam --repeats 10
    python scripts/benchmark.py --shapes 30x84x84:1:64:9 --opt checkpoint_blocks --markdown BENCHMARKS.md

A shape is ``DxHxW[:channels[:ngf[:blocks]]]`` (defaults 1 channel, ngf 64, 9 residual blocks); ``paper``
stands for the paper's shapes (30x84x84 1 and 3 channels, 8x108x192 3 channels, 30x256x256 1 channel, ngf 64,
9 blocks) and ``quick`` for the quick presets' 16x28x28, ngf 8, 3 blocks. ``--opt`` names the switches of the
optimised step, as the bundles' config keys: ``amp`` (bf16 autocast; ``--amp-dtype float16`` on CUDA),
``channels_last``, ``compile``, ``checkpoint_blocks``, ``fused_adam``, ``cudnn_benchmark``.

Each variant runs in its own Python process (``--in-process``: not), from the same seed: the same weights and
data. It reports the median seconds per step over ``--repeats`` after ``--warmup`` untimed steps (the first step,
compilation included, separately), training volumes (clips of each domain) per second, and the peak memory:
``torch.cuda.max_memory_allocated`` on CUDA (weights, optimizer state and activations), on CPU the rise of the
process's peak resident memory during the steps above its resident memory before them (activations, gradients
and optimizer state, allocator effects included). The ratios are reference / optimised for time (> 1: faster)
and optimised / reference for memory (< 1: less).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

OPTIONS = ("amp", "channels_last", "compile", "checkpoint_blocks", "fused_adam", "cudnn_benchmark")
PAPER_SHAPES = ("30x84x84:1:64:9", "30x84x84:3:64:9", "8x108x192:3:64:9", "30x256x256:1:64:9")
QUICK_SHAPES = ("16x28x28:1:8:3",)


def parse_shape(text: str) -> dict:
    """``"DxHxW[:channels[:ngf[:blocks]]]"`` as ``{"shape", "channels", "ngf", "blocks"}``."""
    parts = text.split(":")
    try:
        shape = tuple(int(n) for n in parts[0].lower().split("x"))
        channels, ngf, blocks = (int(p) for p in (parts[1:] + ["1", "64", "9"][len(parts) - 1:])[:3])
    except ValueError:
        raise ValueError(f"shape {text!r}: expected DxHxW[:channels[:ngf[:blocks]]], e.g. 30x84x84:1:64:9") from None
    if len(shape) != 3 or len(parts) > 4 or min(*shape, channels, ngf) < 1 or blocks < 0:
        raise ValueError(f"shape {text!r}: expected DxHxW[:channels[:ngf[:blocks]]], e.g. 30x84x84:1:64:9")
    return {"shape": shape, "channels": channels, "ngf": ngf, "blocks": blocks}


def expand_shapes(items: list[str]) -> list[str]:
    out = []
    for item in items:
        for text in item.split(","):
            out += PAPER_SHAPES if text == "paper" else QUICK_SHAPES if text == "quick" else [text] if text else []
    return out


def parse_options(text: str) -> list[str]:
    options = [o.strip() for o in text.split(",") if o.strip() and o.strip() != "none"]
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise ValueError(f"unknown --opt {unknown}; choose from {', '.join(OPTIONS)}.")
    return options


def build_trainer(method: str, shape: tuple[int, int, int], channels: int, ngf: int, blocks: int, device: str,
                  frames_per_batch: int = 8, options: tuple[str, ...] = (), amp_dtype: str = "bfloat16",
                  batch: int = 1, seed: int = 0):
    """A CycleGAN trainer (as the bundles build it, with the switches ``options``) and one random batch."""
    from mr2ct.engine import CycleGANTrainer, batch_preparer, method_spatial_dims
    from mr2ct.engine.performance import adam_options, configure_backends
    from mr2ct.networks import PatchGANDiscriminator, ResnetGenerator, init_weights

    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; choose from {', '.join(OPTIONS)}.")
    if torch.device(device).type == "cuda":
        configure_backends(cudnn_benchmark="cudnn_benchmark" in options)
    torch.manual_seed(seed)
    dims = method_spatial_dims(method)
    size = shape if dims == 3 else shape[1:]
    g_ab, g_ba = (init_weights(ResnetGenerator(dims, channels, channels, ngf, blocks,
                                               checkpoint_blocks="checkpoint_blocks" in options)).to(device)
                  for _ in range(2))
    d_a, d_b = (init_weights(PatchGANDiscriminator(dims, channels, ngf, input_size=size)).to(device) for _ in range(2))
    adam = adam_options("fused_adam" in options, device)
    g_opt = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=2e-4, betas=(0.5, 0.999), **adam)
    d_opt = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=2e-4, betas=(0.5, 0.999), **adam)
    data = {"A": torch.rand(batch, channels, *shape) * 2 - 1, "B": torch.rand(batch, channels, *shape) * 2 - 1}
    trainer = CycleGANTrainer(device=device, max_epochs=1, train_data_loader=[data], g_ab=g_ab, g_ba=g_ba, d_a=d_a,
                              d_b=d_b, g_optimizer=g_opt, d_optimizer=d_opt, clip_depth=shape[0],
                              prepare_batch=batch_preparer(method, frames_per_batch), amp="amp" in options,
                              amp_dtype=amp_dtype, channels_last="channels_last" in options,
                              compile="compile" in options)
    trainer.state.device = torch.device(device)
    if trainer.amp and trainer.amp_dtype == torch.float16:  # what CycleGANTrainer.run does
        trainer.scaler = torch.amp.GradScaler("cuda")
    return trainer, data


def _proc_status(field: str) -> int | None:
    """``VmRSS``/``VmHWM`` of this process in bytes (Linux), None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the peak resident memory (``VmHWM``) to the current one (Linux ``clear_refs``); False if impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(spec: dict, options: tuple[str, ...], device: str, method: str = "3d", frames_per_batch: int = 8,
            warmup: int = 1, repeats: int = 3, amp_dtype: str = "bfloat16", batch: int = 1) -> dict:
    """Time ``warmup + repeats`` training steps of one variant; returns times, losses and peak memory."""
    trainer, data = build_trainer(method, spec["shape"], spec["channels"], spec["ngf"], spec["blocks"], device,
                                  frames_per_batch, tuple(options), amp_dtype, batch)
    trainer.max_nonfinite_steps = None  # count non-finite steps (reported), do not stop
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base_rss = _proc_status("VmRSS")
    reset = _reset_peak_rss()
    base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times, losses, skipped = [], None, 0
    for _ in range(warmup + repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = trainer._iteration(trainer, data)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        skipped += trainer.state.nonfinite_steps > 0
        losses = losses or {k: float(v) for k, v in out.items() if k.startswith("loss_")}
    if cuda:
        peak, peak_kind = torch.cuda.max_memory_allocated(), "cuda"
    else:
        hwm = _proc_status("VmHWM") if reset else None
        if hwm is not None and base_rss is not None:
            peak = hwm - base_rss
        else:  # the process's peak since it started: a rise only if the steps exceed the build
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_maxrss
        peak_kind = "rss_delta"
    timed = times[warmup:] or times
    return {"first": times[0], "median": statistics.median(timed), "times": timed, "peak": peak,
            "peak_kind": peak_kind, "losses": losses, "batch": batch, "skipped": skipped}


def _measure_isolated(spec: dict, options: tuple[str, ...], args) -> dict:
    """:func:`measure` in a fresh Python process (clean peak memory, caches and compiled code)."""
    job = {"spec": {**spec, "shape": list(spec["shape"])}, "options": list(options), "device": args.device,
           "method": args.method, "frames_per_batch": args.frames_per_batch, "warmup": args.warmup,
           "repeats": args.repeats, "amp_dtype": args.amp_dtype, "batch": args.batch, "threads": args.threads}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed ({' '.join(options) or 'reference'}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _worker(job_json: str) -> None:
    job = json.loads(job_json)
    threads = job.pop("threads")
    if threads:
        torch.set_num_threads(threads)
    spec = job.pop("spec")
    spec["shape"] = tuple(spec["shape"])
    result = measure(spec, tuple(job.pop("options")), **job)
    print(json.dumps(result))


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU x{torch.get_num_threads()} ({model})"


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.0f} MiB"


def table(rows: list[dict], label: str) -> list[str]:
    lines = [(f"| shape | ch | ngf | blocks | step | s / step (first) | volumes / s | peak memory ({label}) "
              "| speed-up | memory ratio |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        spec, res, ref = row["spec"], row["result"], row["reference"]
        speed = ref["median"] / res["median"]
        mem = f"{res['peak'] / ref['peak']:.2f}" if ref["peak"] > 0 else "-"
        lines.append(f"| {'x'.join(map(str, spec['shape']))} | {spec['channels']} | {spec['ngf']} | {spec['blocks']} "
                     f"| {row['name']} | {res['median']:.3f} ({res['first']:.2f}) | {res['batch'] / res['median']:.2f} "
                     f"| {_gib(res['peak'])} | {speed:.2f}x | {mem} |")
    return lines


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark (``argv``: command-line arguments); print the table; returns its rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--shapes", nargs="+", default=["paper", "quick"],
                        help="shapes DxHxW[:channels[:ngf[:blocks]]], 'paper' or 'quick' (default: paper quick)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("D", "H", "W"),
                        help="one shape, with --channels, --ngf, --blocks (the older form of --shapes)")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--opt", default="amp,channels_last,fused_adam",
                        help=f"comma-separated switches of the optimised step, from: {', '.join(OPTIONS)}")
    parser.add_argument("--amp-dtype", default="bfloat16", choices=("bfloat16", "float16"))
    parser.add_argument("--method", default="3d")
    parser.add_argument("--frames-per-batch", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1, help="clips per batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--in-process", action="store_true", help="run every variant in this process")
    parser.add_argument("--markdown", metavar="FILE", help="append a section with the command and table to FILE")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return []
    if args.threads:
        torch.set_num_threads(args.threads)
    options = tuple(parse_options(args.opt))
    if "amp" in options and args.amp_dtype == "float16" and torch.device(args.device).type != "cuda":
        parser.error("--amp-dtype float16 needs a CUDA device.")
    shapes = [f"{'x'.join(map(str, args.shape))}:{args.channels}:{args.ngf}:{args.blocks}"] if args.shape else \
        expand_shapes(args.shapes)
    specs = [parse_shape(s) for s in shapes]
    run = (lambda spec, opts: measure(spec, opts, args.device, args.method, args.frames_per_batch, args.warmup,
                                      args.repeats, args.amp_dtype, args.batch)) if args.in_process else \
        (lambda spec, opts: _measure_isolated(spec, opts, args))
    name = "+".join(options) or "reference (no switches)"
    if "amp" in options:
        name = name.replace("amp", f"amp ({'bf16' if args.amp_dtype == 'bfloat16' else 'fp16'})")
    rows = []
    label = "max allocated" if torch.device(args.device).type == "cuda" else "RSS rise"
    print("\n".join(table([], label)), flush=True)
    for spec in specs:
        reference = run(spec, ())
        result = run(spec, options)
        for row_name, res in (("fp32 reference", reference), (name, result)):
            rows.append({"spec": spec, "name": row_name, "result": res, "reference": reference})
            print(table(rows[-1:], label)[-1], flush=True)
        diff = max(abs(result["losses"][k] - reference["losses"][k]) for k in reference["losses"])
        print(f"  first-step losses: max |optimised - reference| = {diff:.2e}", flush=True)
        for row_name, res in (("reference", reference), ("optimised", result)):
            if res["skipped"]:
                print(f"  WARNING: {res['skipped']} of the {row_name} step's {args.warmup + args.repeats} iterations "
                      "had non-finite losses or gradients: their updates were skipped (faster)", flush=True)
    command = "python scripts/benchmark.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    footer = (f"{device_name(args.device)}, torch {torch.__version__}, method {args.method}, batch {args.batch}, "
              f"median of {args.repeats} steps after {args.warmup} warm-up, "
              f"{datetime.date.today().isoformat()}")
    print(footer)
    if args.markdown:
        section = [(f"\n## Training-step switches, {device_name(args.device)} ({datetime.date.today().isoformat()}, "
                    f"torch {torch.__version__})\n"), "```", f"$ {command}", *table(rows, label), "```", "", footer, ""]
        with open(args.markdown, "a") as f:
            f.write("\n".join(section))
    return rows


if __name__ == "__main__":
    main()
