"""Time whole-volume translation as the MR<->CT bundle's inference runs it (Gaussian-blended sliding windows): the
plain fp32 reference (one window at a time) and a variant with batched windows and switches, side by side.

Usage (``mr2ct bench inference ...`` is the same as ``python scripts/benchmark_inference.py ...``)::

    mr2ct bench inference --volume 120 256 256 --sw-batch-size 4 --opt amp --markdown BENCHMARKS.md
    mr2ct bench inference --volume 120 256 256 --roi 30 256 256 --overlap 0.5 --opt amp,channels_last

Shapes are slices x rows x columns (a 256x256x120 NIfTI volume is ``--volume 120 256 256``). The reference
always uses ``sw_batch_size`` 1 and fp32; the optimised variant ``--sw-batch-size`` windows per forward pass
and the switches of ``--opt``: ``amp`` (autocast in ``--amp-dtype``, the inference config's ``amp`` and
``amp_dtype`` keys), ``channels_last``. Each variant runs in its own process from the same seed (same random
weights and volume: the time does not depend on the weights). The table gives the median seconds per volume
over ``--repeats`` after ``--warmup`` untimed volumes, volumes per second, the achieved TFLOP/s (the
reference's convolutions counted by ``FlopCounterMode``), the peak memory (see
:class:`~mr2ct.benchmarks.measure.PeakMemory`), the speed-up and the memory ratio; below it, the largest
difference of the optimised output from the reference's (the generator ends in ``tanh``: outputs in [-1, 1]).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from monai.inferers import SlidingWindowInferer

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
from mr2ct.engine.performance import amp_dtype as parse_amp_dtype
from mr2ct.engine.performance import to_channels_last

__all__ = ["OPTIONS", "main", "measure"]

OPTIONS = ("amp", "channels_last")


def measure(
    volume: tuple[int, int, int],
    roi: tuple[int, int, int],
    overlap: float,
    ngf: int,
    blocks: int,
    device: str,
    sw_batch_size: int = 1,
    options: tuple[str, ...] = (),
    amp_dtype: str = "bfloat16",
    warmup: int = 1,
    repeats: int = 3,
    count: bool = False,
    seed: int = 0,
) -> dict:
    """Translate one random volume ``warmup + repeats`` times; returns the times, windows per volume, the peak
    memory, the output (a CPU float32 tensor) and, with ``count``, the first volume's FLOPs."""
    from mr2ct.networks import ResnetGenerator, init_weights

    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; choose from {', '.join(OPTIONS)}.")
    dtype = parse_amp_dtype(amp_dtype, device if "amp" in options else None)
    torch.manual_seed(seed)
    with PeakMemory(device) as memory:
        network = init_weights(ResnetGenerator(3, 1, 1, ngf, blocks)).to(device).eval()
        image = (torch.rand(1, 1, *volume) * 2 - 1).to(device)
        inferer = SlidingWindowInferer(
            roi, sw_batch_size=sw_batch_size, overlap=overlap, mode="gaussian", padding_mode="replicate"
        )
        channels_last = "channels_last" in options
        if channels_last:
            to_channels_last(network)
        windows: list[int] = []

        def forward(x: torch.Tensor) -> torch.Tensor:
            windows.append(len(x))
            return network(to_channels_last(x) if channels_last else x)

        def translate() -> torch.Tensor:
            with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=dtype, enabled="amp" in options):
                return inferer(image, forward)  # type: ignore[return-value]  # a tensor for a tensor

        times, flops = [], None
        for step in range(warmup + repeats):
            windows.clear()
            synchronize(device)
            start = time.perf_counter()
            if count and step == 0:
                output, flops = count_flops(translate)
            else:
                output = translate()
            synchronize(device)
            times.append(time.perf_counter() - start)
    timed = times[warmup:] or times
    return {
        "first": times[0],
        "median": statistics.median(timed),
        "times": timed,
        "windows": sum(windows),
        "peak": memory.peak,
        "peak_kind": memory.kind,
        "flops": flops,
        "output": output.float().cpu(),
    }


def _worker(job_json: str) -> None:
    """A variant measured in this (fresh) process: prints its result as JSON, the output saved to a file."""
    job = read_job(job_json)
    output_path = job.pop("output_path")
    job["volume"], job["roi"], job["options"] = tuple(job["volume"]), tuple(job["roi"]), tuple(job["options"])
    result = measure(**job)
    torch.save(result.pop("output"), output_path)
    print(json.dumps(result))


def table(rows: list[dict], peak: float | None = None) -> list[str]:
    """Markdown table lines (header only for no ``rows``); ``peak``: the device's peak TFLOP/s, if known."""
    lines = [
        "| volume | window | overlap | ngf | blocks | variant | windows | s / volume (first) | volumes / s "
        "| TFLOP/s | peak memory | speed-up | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        res, spec = row["result"], row["spec"]
        cells = comparison_cells(res, row["reference"], peak)
        lines.append(
            f"| {'x'.join(map(str, spec['volume']))} | {'x'.join(map(str, spec['roi']))} | {spec['overlap']} "
            f"| {spec['ngf']} | {spec['blocks']} | {row['name']} | {res['windows']} "
            f"| {res['median']:.3g} ({res['first']:.3g}) | {1 / res['median']:.3g} | {cells['tflops']} "
            f"| {cells['memory']} | {cells['speedup']} | {cells['memory_ratio']} |"
        )
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = documented_parser(__name__, "mr2ct bench inference")
    parser.add_argument("--volume", type=int, nargs=3, default=[120, 256, 256], metavar=("D", "H", "W"))
    parser.add_argument(
        "--roi",
        type=int,
        nargs=3,
        default=[30, 256, 256],
        metavar=("D", "H", "W"),
        help="the sliding window (the bundle's volume_size)",
    )
    parser.add_argument("--overlap", type=float, default=0.25, help="the bundle's sw_overlap")
    parser.add_argument("--sw-batch-size", type=int, default=4, help="windows per forward pass (optimised)")
    parser.add_argument("--opt", default="amp", help=f"comma-separated switches, from: {', '.join(OPTIONS)}")
    parser.add_argument("--amp-dtype", default="bfloat16", choices=("bfloat16", "float16"))
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark (``argv``: command-line arguments) and print the table; returns both variants' results
    (without outputs) and the largest and mean absolute difference of their outputs."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return {}
    options = tuple(o.strip() for o in args.opt.split(",") if o.strip() and o.strip() != "none")
    if set(options) - set(OPTIONS):
        parser.error(f"unknown --opt {sorted(set(options) - set(OPTIONS))}; choose from {', '.join(OPTIONS)}.")
    if min(*args.volume, *args.roi, args.sw_batch_size) < 1:
        parser.error("--volume, --roi and --sw-batch-size must be >= 1.")
    if not 0 <= args.overlap < 1:
        parser.error("--overlap must be in [0, 1).")
    check_device(parser, args, "amp" in options)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = {
        "volume": tuple(args.volume),
        "roi": tuple(args.roi),
        "overlap": args.overlap,
        "ngf": args.ngf,
        "blocks": args.blocks,
    }
    settings = {
        **spec,
        "device": args.device,
        "amp_dtype": args.amp_dtype,
        "warmup": args.warmup,
        "repeats": args.repeats,
    }

    def run(opts: tuple[str, ...], sw_batch_size: int, count: bool, scratch: Path) -> dict:
        if args.in_process:
            return measure(sw_batch_size=sw_batch_size, options=opts, count=count, **settings)
        output_path = scratch / f"{'reference' if count else 'optimised'}.pt"
        job = {
            **settings,
            "volume": list(args.volume),
            "roi": list(args.roi),
            "sw_batch_size": sw_batch_size,
            "options": list(opts),
            "count": count,
            "threads": args.threads,
            "output_path": str(output_path),
        }
        result = run_isolated(__name__, job, f"sw_batch_size {sw_batch_size} {' '.join(opts)}")
        result["output"] = torch.load(output_path, weights_only=True)
        return result

    peak = args.peak_tflops or peak_tflops(args.device)
    labels = {"amp": f"amp ({'bf16' if args.amp_dtype == 'bfloat16' else 'fp16'})"}
    name = " + ".join([f"sw_batch_size {args.sw_batch_size}", *(labels.get(o, o) for o in options)])
    print("\n".join(table([])), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        reference = run((), 1, True, Path(scratch))
        result = run(options, args.sw_batch_size, False, Path(scratch))
    rows = [
        {"spec": spec, "name": row_name, "result": res, "reference": reference}
        for row_name, res in (("fp32 reference, sw_batch_size 1", reference), (name, result))
    ]
    print("\n".join(table(rows, peak)[2:]), flush=True)
    diff = (result["output"] - reference["output"]).abs()
    summary = f"  output: max |optimised - reference| = {diff.max():.2e}, mean {diff.mean():.2e}"
    print(summary)
    footer = (
        f"{device_name(args.device)}, torch {torch.__version__}, random weights, Gaussian blending, "
        f"median of {args.repeats} volumes after {args.warmup} warm-up; peak memory: {reference['peak_kind']}"
        + (f"; bf16 peak {peak:g} TFLOP/s" if peak else "")
    )
    print(footer)
    if args.markdown:
        command = "mr2ct bench inference " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
        )
        append_markdown(
            args.markdown,
            f"Whole-volume inference, {device_name(args.device)}",
            command,
            [*table(rows, peak), summary],
            footer,
        )

    def without_output(res: dict) -> dict:
        return {k: v for k, v in res.items() if k != "output"}

    return {
        "reference": without_output(reference),
        "optimised": without_output(result),
        "max_abs_difference": float(diff.max()),
        "mean_abs_difference": float(diff.mean()),
    }


if __name__ == "__main__":
    main()
