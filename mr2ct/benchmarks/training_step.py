"""Time one CycleGAN training step (both generator and both discriminator updates): the plain fp32 reference and
a step with performance switches, side by side, at one or more shapes.

Usage (``mr2ct bench ...`` is the same as ``python scripts/benchmark.py ...``)::

    mr2ct bench --device cuda --opt amp,channels_last,fused_adam,cudnn_benchmark --markdown BENCHMARKS.md
    mr2ct bench --device cpu --shapes quick --opt amp,channels_last,fused_adam --repeats 20 --warmup 3
    mr2ct bench --shapes 30x256x256:1:64:9 --opt amp,checkpoint_blocks --repeats 1 --warmup 0
    mr2ct bench --device cpu --peer ganslate --opt amp,channels_last --repeats 3 --warmup 1   # beside ganslate

A shape is ``DxHxW[:channels[:ngf[:blocks]]]`` (defaults 1 channel, ngf 64, 9 residual blocks); ``paper``
stands for the paper's shapes (30x84x84 1 and 3 channels, 8x108x192 3 channels, 30x256x256 1 channel, ngf 64,
9 blocks) and ``quick`` for the quick presets' 16x28x28, ngf 8, 3 blocks. ``--opt`` names the switches of the
optimised step, as the bundles' config keys: ``amp`` (bf16 autocast; ``--amp-dtype float16`` on CUDA),
``channels_last``, ``compile``, ``checkpoint_blocks``, ``fused_adam``, ``cudnn_benchmark``.

Each variant runs in its own Python process (``--in-process``: not), from the same seed: the same weights and
data. The table gives the median seconds per step over ``--repeats`` after ``--warmup`` untimed steps (the first
step, compilation included, in brackets), training volumes (clips of each domain) per second, the achieved
TFLOP/s, the peak memory, and the ratios: reference / optimised time (> 1: faster) and optimised / reference
memory (< 1: less).

- FLOPs are the model's: PyTorch's ``FlopCounterMode`` counts the convolutions (forward and backward) of the
  reference's first step; the optimised step is credited with the same number (activation checkpointing's
  recomputation is not useful work). On CUDA the share of the GPU's dense bf16 peak follows in brackets
  (``--peak-tflops`` for a GPU not in :data:`~mr2ct.benchmarks.measure.BF16_PEAK_TFLOPS`).
- Peak memory counts everything the step needs (weights, gradients, Adam state, activations, the batch):
  ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the rise of the process's peak resident memory from
  before the networks were built (see :class:`~mr2ct.benchmarks.measure.PeakMemory`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time

import torch

from mr2ct.benchmarks.measure import (
    PeakMemory,
    add_common_arguments,
    append_markdown,
    check_device,
    comparison_cells,
    count_flops,
    device_name,
    documented_parser,
    peak_tflops,
    read_job,
    run_isolated,
    synchronize,
)
from mr2ct.engine.methods import METHODS
from mr2ct.engine.performance import PERFORMANCE_FLAGS

__all__ = [
    "OPTIONS",
    "PAPER_SHAPES",
    "QUICK_SHAPES",
    "build_trainer",
    "expand_shapes",
    "main",
    "measure",
    "parse_options",
    "parse_shape",
]

OPTIONS = PERFORMANCE_FLAGS  # the switches of the optimised step, as the bundles' config keys
PAPER_SHAPES = ("30x84x84:1:64:9", "30x84x84:3:64:9", "8x108x192:3:64:9", "30x256x256:1:64:9")
QUICK_SHAPES = ("16x28x28:1:8:3",)
_SHAPE_HELP = "expected DxHxW[:channels[:ngf[:blocks]]], e.g. 30x84x84:1:64:9"


def parse_shape(text: str) -> dict:
    """``"DxHxW[:channels[:ngf[:blocks]]]"`` as ``{"shape", "channels", "ngf", "blocks"}``."""
    parts = text.split(":")
    try:
        shape = tuple(int(n) for n in parts[0].lower().split("x"))
        channels, ngf, blocks = (int(p) for p in (parts[1:] + ["1", "64", "9"][len(parts) - 1 :])[:3])
    except ValueError:
        raise ValueError(f"shape {text!r}: {_SHAPE_HELP}") from None
    if len(shape) != 3 or len(parts) > 4 or min(*shape, channels, ngf) < 1 or blocks < 0:
        raise ValueError(f"shape {text!r}: {_SHAPE_HELP}")
    return {"shape": shape, "channels": channels, "ngf": ngf, "blocks": blocks}


def expand_shapes(items: list[str]) -> list[str]:
    """Shapes from ``--shapes`` items (comma-separated too), with ``paper`` and ``quick`` expanded."""
    out: list[str] = []
    for item in items:
        for text in item.split(","):
            out += PAPER_SHAPES if text == "paper" else QUICK_SHAPES if text == "quick" else [text] if text else []
    return out


def parse_options(text: str) -> list[str]:
    """The switches of ``--opt`` (``"none"`` or empty: none); a clear error for an unknown one."""
    options = [o.strip() for o in text.split(",") if o.strip() and o.strip() != "none"]
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise ValueError(f"unknown --opt {unknown}; choose from {', '.join(OPTIONS)}.")
    return options


def build_trainer(
    method: str,
    shape: tuple[int, int, int],
    channels: int,
    ngf: int,
    blocks: int,
    device: str,
    frames_per_batch: int = 8,
    options: tuple[str, ...] = (),
    amp_dtype: str = "bfloat16",
    batch: int = 1,
    seed: int = 0,
):
    """The bundles' CycleGAN trainer (the shared training config, with the switches ``options``; ``ndf`` =
    ``ngf``) and one random batch of ``batch`` clips of each domain."""
    from mr2ct.bundle import load_config
    from mr2ct.engine.performance import amp_dtype as amp_dtype_of
    from mr2ct.engine.performance import configure_backends

    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; choose from {', '.join(OPTIONS)}.")
    if torch.device(device).type == "cuda":
        configure_backends(cudnn_benchmark="cudnn_benchmark" in options)
    if "amp" in options:
        amp_dtype_of(amp_dtype, device)  # a usage error before anything is built
    generator = torch.Generator().manual_seed(seed)
    data = {key: (torch.rand(batch, channels, *shape, generator=generator) * 2 - 1).to(device) for key in ("A", "B")}
    torch.manual_seed(seed)  # the networks' initial weights
    overrides = {
        "device": torch.device(device),
        "method": method,
        "depth": shape[0],
        "size": list(shape[1:]),
        "channels": channels,
        "ngf": ngf,
        "ndf": ngf,
        "num_res_blocks": blocks,
        "amp_dtype": amp_dtype,
        "frames_per_batch": frames_per_batch if method == "random" else None,
        "max_epochs": 1,
        "decay_epochs": 0,
        "train#dataloader": [data],
        "train#handlers": [],
        **{option: option in options for option in OPTIONS},
    }
    parser = load_config("vmnist_cyclegan3d", overrides=overrides)
    trainer = parser.get_parsed_content("train#trainer")
    trainer.state.device = torch.device(device)
    return trainer, data


def measure(
    spec: dict,
    options: tuple[str, ...],
    device: str,
    method: str = "3d",
    frames_per_batch: int = 8,
    warmup: int = 1,
    repeats: int = 3,
    amp_dtype: str = "bfloat16",
    batch: int = 1,
    count: bool = False,
) -> dict:
    """Run ``warmup + repeats`` training steps of one variant; returns their times, the first step's losses, the
    peak memory, the number of skipped (non-finite) steps and, with ``count``, the first step's FLOPs (counted
    while it runs: with ``warmup`` 0 the count's small overhead is in a timed step)."""
    with PeakMemory(device) as memory:
        trainer, data = build_trainer(
            method,
            spec["shape"],
            spec["channels"],
            spec["ngf"],
            spec["blocks"],
            device,
            frames_per_batch,
            tuple(options),
            amp_dtype,
            batch,
        )
        trainer.max_nonfinite_steps = None  # count non-finite steps (reported), do not stop
        times, losses, skipped, flops = [], None, 0, None
        for step in range(warmup + repeats):
            synchronize(device)
            start = time.perf_counter()
            if count and step == 0:
                out, flops = count_flops(lambda: trainer.train_step(data))
            else:
                out = trainer.train_step(data)
            synchronize(device)
            times.append(time.perf_counter() - start)
            skipped += trainer.state.nonfinite_steps > 0
            losses = losses or {k: float(v) for k, v in out.items() if k.startswith("loss_")}
    timed = times[warmup:] or times
    return {
        "first": times[0],
        "median": statistics.median(timed),
        "times": timed,
        "peak": memory.peak,
        "peak_kind": memory.kind,
        "losses": losses,
        "batch": batch,
        "skipped": skipped,
        "flops": flops,
    }


def _worker(job_json: str) -> None:
    """A variant measured in this (fresh) process; prints its result as JSON."""
    job = read_job(job_json)
    spec = job.pop("spec")
    spec["shape"] = tuple(spec["shape"])
    print(json.dumps(measure(spec, tuple(job.pop("options")), **job)))


def table(rows: list[dict], peak: float | None = None) -> list[str]:
    """Markdown table lines (header only for no ``rows``); ``peak``: the device's peak TFLOP/s, if known."""
    lines = [
        "| shape | ch | ngf | blocks | step | s / step (first) | volumes / s | TFLOP/s | peak memory "
        "| speed-up | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        spec, res = row["spec"], row["result"]
        cells = comparison_cells(res, row["reference"], peak)
        lines.append(
            f"| {'x'.join(map(str, spec['shape']))} | {spec['channels']} | {spec['ngf']} | {spec['blocks']} "
            f"| {row['name']} | {res['median']:.3f} ({res['first']:.2f}) | {res['batch'] / res['median']:.3g} "
            f"| {cells['tflops']} | {cells['memory']} | {cells['speedup']} | {cells['memory_ratio']} |"
        )
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = documented_parser(__name__, "mr2ct bench")
    parser.add_argument(
        "--shapes",
        nargs="+",
        help="shapes DxHxW[:channels[:ngf[:blocks]]], 'paper' or 'quick' (default: paper quick on "
        "CUDA, quick on the CPU, where a paper-size step takes minutes)",
    )
    parser.add_argument(
        "--opt",
        default="amp,channels_last,fused_adam",
        help=f"comma-separated switches of the optimised step, from: {', '.join(OPTIONS)}",
    )
    parser.add_argument("--amp-dtype", default="bfloat16", choices=("bfloat16", "float16"))
    parser.add_argument("--method", default="3d", choices=list(METHODS))
    parser.add_argument("--frames-per-batch", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1, help="clips per batch")
    parser.add_argument(
        "--peer",
        help="also time a peer's step at the same shapes, in its own virtual environment: ganslate (default "
        "shapes 32x64x64 and 32x84x84, ngf 64; see mr2ct.benchmarks.peer)",
    )
    parser.add_argument("--peer-dir", help="where the peer's virtual environment is made (outside the repository)")
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark (``argv``: command-line arguments); print the table; returns its rows."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return []
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        options = tuple(parse_options(args.opt))
        shapes = args.shapes or (["paper", "quick"] if torch.device(args.device).type == "cuda" else ["quick"])
        if args.peer:
            from mr2ct.benchmarks.peer import PEER_SHAPES, check_peer_specs

            shapes = args.shapes or list(PEER_SHAPES)
        specs = [parse_shape(s) for s in expand_shapes(shapes)]
        if args.peer:
            check_peer_specs(args.peer, specs, args.device)
    except ValueError as e:
        parser.error(str(e))
    check_device(parser, args, "amp" in options)
    settings = {
        "device": args.device,
        "method": args.method,
        "frames_per_batch": args.frames_per_batch,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "amp_dtype": args.amp_dtype,
        "batch": args.batch,
    }

    def run(spec: dict, opts: tuple[str, ...], count: bool) -> dict:
        if args.in_process:
            return measure(spec, opts, count=count, **settings)
        job = {
            "spec": {**spec, "shape": list(spec["shape"])},
            "options": list(opts),
            "count": count,
            "threads": args.threads,
            **settings,
        }
        return run_isolated(__name__, job, " ".join(opts) or "reference")

    if args.peer:
        return _peer_main(args, argv, specs, options, run)
    name = "+".join(options) or "reference (no switches)"
    if "amp" in options:
        name = name.replace("amp", f"amp ({'bf16' if args.amp_dtype == 'bfloat16' else 'fp16'})")
    peak = args.peak_tflops or peak_tflops(args.device)
    rows: list[dict] = []
    print("\n".join(table([])), flush=True)
    for spec in specs:
        reference = run(spec, (), count=True)
        result = run(spec, options, count=False)
        for row_name, res in (("fp32 reference", reference), (name, result)):
            rows.append({"spec": spec, "name": row_name, "result": res, "reference": reference})
            print(table(rows[-1:], peak)[-1], flush=True)
        diff = max(abs(result["losses"][k] - reference["losses"][k]) for k in reference["losses"])
        print(f"  first-step losses: max |optimised - reference| = {diff:.2e}", flush=True)
        for row_name, res in (("reference", reference), ("optimised", result)):
            if res["skipped"]:
                print(
                    f"  WARNING: {res['skipped']} of the {row_name} step's {args.warmup + args.repeats} iterations "
                    "had non-finite losses or gradients: their updates were skipped (faster)",
                    flush=True,
                )
    memory_kind = rows[0]["result"]["peak_kind"] if rows else ""
    footer = (
        f"{device_name(args.device)}, torch {torch.__version__}, method {args.method}, batch {args.batch}, "
        f"median of {args.repeats} steps after {args.warmup} warm-up; peak memory: {memory_kind}"
        + (f"; bf16 peak {peak:g} TFLOP/s" if peak else "")
    )
    print(footer)
    if args.markdown:
        command = "mr2ct bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        append_markdown(args.markdown, f"Training step, {device_name(args.device)}", command, table(rows, peak), footer)
    return rows


def _peer_main(args, argv, specs: list[dict], options: tuple[str, ...], run) -> list[dict]:
    """``--peer``: for each shape the peer's step, our fp32 reference and our optimised step; ratios to the peer
    and shares of this CPU's matmul peak (measured first, in this process)."""
    from mr2ct.benchmarks.measure import format_bytes
    from mr2ct.benchmarks.peer import ensure_ganslate, matmul_peak, run_peer

    python = ensure_ganslate(args.peer_dir)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"CPU matmul peak (2048x2048, best of 5): fp32 {peaks['fp32']:.3f} TFLOP/s, bf16 {peaks['bf16']:.3f} TFLOP/s")
    best = "+".join(options).replace("amp", "amp (bf16)") or "reference (no switches)"
    lines = [
        "| shape | step | s / step (first) | vs ganslate | TFLOP/s | share of CPU matmul peak | peak memory |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    rows = []
    for spec in specs:
        peer = run_peer(python, spec, args.warmup, args.repeats, args.threads)
        reference = run(spec, (), count=True)
        result = run(spec, options, count=False)
        for row_name, res, flops, dtype in (
            ("ganslate Resnet3D + PatchGAN3D (fp32)", peer, peer["flops"], "fp32"),
            ("mr2ct fp32 reference", reference, reference["flops"], "fp32"),
            (f"mr2ct {best}", result, reference["flops"], "bf16" if "amp" in options else "fp32"),
        ):
            tflops = flops / res["median"] / 1e12
            line = (
                f"| {'x'.join(map(str, spec['shape']))} ngf {spec['ngf']} | {row_name} "
                f"| {res['median']:.2f} ({res['first']:.2f}) | {peer['median'] / res['median']:.2f}x "
                f"| {tflops:.3f} | {100 * tflops / peaks[dtype]:.0f}% of {dtype} "
                f"| {format_bytes(res['peak']) if res['peak'] is not None else '-'} |"
            )
            lines.append(line)
            rows.append({"spec": spec, "name": row_name, "result": res, "tflops": tflops})
            print(line, flush=True)
    footer = (
        f"{device_name(args.device)}, torch {torch.__version__} (ganslate's environment: torch {peer['torch']}), "
        f"batch 1, median of {args.repeats} steps after {args.warmup} warm-up, each in its own process; CPU "
        f"matmul peak fp32 {peaks['fp32']:.3f} / bf16 {peaks['bf16']:.3f} TFLOP/s; peak memory: RSS rise"
    )
    print(footer)
    if args.markdown:
        command = "mr2ct bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        append_markdown(
            args.markdown, f"Training step beside ganslate, {device_name(args.device)}", command, lines, footer
        )
    return rows


if __name__ == "__main__":
    main()
