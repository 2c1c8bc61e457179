"""How the cost grows with the work (``mr2ct bench curves``): training-step time and peak memory against the
volume's depth, its in-plane size and ngf, and whole-volume inference (one generator forward, no sliding
windows) against the volume's size; a CSV and a PNG.

Usage::

    mr2ct bench curves --output docs/cost_curves            # CPU-sized defaults (a few minutes on 2 cores)
    mr2ct bench curves --output OUT --ngf 64 --blocks 9 --depths 8 16 32 64 --sizes 64 128 256 --device cuda

Each point is measured in its own process (``mr2ct.benchmarks.training_step.measure``: the median of
``--repeats`` steps after ``--warmup``; peak memory as there: CUDA allocated or the RSS rise). Writes
``OUT.csv`` (one row per point: curve, x, seconds, peak bytes) and ``OUT.png`` (time and memory against x,
log-log against the growth of the voxels or ngf from each curve's first point, with the slope of a
straight-line fit: 1 is linear growth, 2 quadratic).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from mr2ct.benchmarks.measure import PeakMemory, device_name, run_isolated, synchronize
from mr2ct.io.atomic import atomic_file, atomic_write_text

__all__ = ["main", "slope"]


def _inference(shape: list[int], ngf: int, blocks: int, device: str, warmup: int, repeats: int) -> dict:
    from mr2ct.networks import ResnetGenerator

    with PeakMemory(device) as memory:
        torch.manual_seed(0)
        net = ResnetGenerator(3, 1, 1, channels=ngf, num_res_blocks=blocks).to(device).eval()
        x = torch.rand(1, 1, *shape, device=device) * 2 - 1
        times = []
        with torch.inference_mode():
            for _ in range(warmup + repeats):
                synchronize(device)
                start = time.perf_counter()
                net(x)
                synchronize(device)
                times.append(time.perf_counter() - start)
    return {"median": statistics.median(times[warmup:] or times), "peak": memory.peak}


def _worker(job: dict) -> dict:
    if job["kind"] == "inference":
        return _inference(job["shape"], job["ngf"], job["blocks"], job["device"], job["warmup"], job["repeats"])
    from mr2ct.benchmarks.training_step import measure

    spec = {"shape": tuple(job["shape"]), "channels": 1, "ngf": job["ngf"], "blocks": job["blocks"]}
    result = measure(spec, (), job["device"], warmup=job["warmup"], repeats=job["repeats"])
    return {"median": result["median"], "peak": result["peak"]}


def slope(xs: list[float], ys: list[float]) -> float:
    """The slope of a least-squares line through ``(log x, log y)``: 1 for linear growth, 2 for quadratic."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def _points(args) -> list[tuple[str, float, dict]]:
    """``(curve, x, job)`` for every point; x is the quantity the curve grows (voxels or ngf)."""
    base = {"device": args.device, "warmup": args.warmup, "repeats": args.repeats, "blocks": args.blocks}
    d0, s0 = args.depths[len(args.depths) // 2], args.sizes[len(args.sizes) // 2]
    out = []
    for d in args.depths:
        out.append(
            (
                f"train step vs depth ({s0}x{s0}, ngf {args.ngf})",
                d,
                {"kind": "train", "shape": [d, s0, s0], "ngf": args.ngf},
            )
        )
    for s in args.sizes:
        out.append(
            (
                f"train step vs in-plane size (depth {d0}, ngf {args.ngf})",
                s * s,
                {"kind": "train", "shape": [d0, s, s], "ngf": args.ngf},
            )
        )
    for n in args.ngfs:
        out.append((f"train step vs ngf ({d0}x{s0}x{s0})", n, {"kind": "train", "shape": [d0, s0, s0], "ngf": n}))
    for v in args.inference:
        out.append(
            (f"inference vs volume (ngf {args.ngf})", v**3, {"kind": "inference", "shape": [v, v, v], "ngf": args.ngf})
        )
    return [(curve, x, {**base, **job}) for curve, x, job in out]


def _plot(rows: list[dict], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for curve in dict.fromkeys(r["curve"] for r in rows):
        pts = [r for r in rows if r["curve"] == curve]
        xs = [r["x"] / pts[0]["x"] for r in pts]
        for ax, key, scale in ((axes[0], "seconds", 1.0), (axes[1], "peak_bytes", 2.0**-20)):
            ys = [r[key] * scale for r in pts]
            label = f"{curve}: slope {slope(xs, ys):.2f}" if len(xs) > 1 and min(ys) > 0 else curve
            ax.loglog(xs, ys, "o-", label=label)
    axes[0].set(
        xlabel="work grown: voxels (or ngf) / the curve's first", ylabel="seconds per step / per volume", title="time"
    )
    axes[1].set(xlabel="work grown: voxels (or ngf) / the curve's first", ylabel="peak memory (MiB)", title="memory")
    for ax in axes:
        ax.legend(fontsize=6)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def main(argv: list[str] | None = None) -> list[dict]:
    """``mr2ct bench curves [--output OUT] [...]``: measure, write OUT.csv and OUT.png, print the slopes."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(_worker(json.loads(argv[1]))))
        return []
    parser = argparse.ArgumentParser(prog="mr2ct bench curves", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="docs/cost_curves", help="OUT: writes OUT.csv and OUT.png")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--ngf", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96])
    parser.add_argument("--ngfs", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--inference", type=int, nargs="+", default=[32, 64, 96, 128], help="cube edges")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if min(args.depths + args.sizes + args.ngfs + args.inference) < 4 or args.repeats < 1 or args.warmup < 0:
        parser.error("sizes and ngf must be >= 4, --repeats >= 1, --warmup >= 0.")
    rows = []
    for curve, x, job in _points(args):
        result = run_isolated(__name__, job, f"{curve} at {job['shape']}")
        rows.append(
            {
                "curve": curve,
                "x": x,
                "shape": "x".join(map(str, job["shape"])),
                "ngf": job["ngf"],
                "seconds": result["median"],
                "peak_bytes": result["peak"] or 0,
            }
        )
        print(
            f"{curve:55s} {rows[-1]['shape']:>12s} ngf {job['ngf']:3d}: {result['median']:.3f} s, "
            f"{(result['peak'] or 0) / 2**20:.0f} MiB",
            flush=True,
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out.with_suffix(".csv"), text.getvalue())
    title = f"{device_name(args.device)}, torch {torch.__version__}, blocks {args.blocks}, median of {args.repeats}"
    _plot(rows, out.with_suffix(".png"), title)
    for curve in dict.fromkeys(r["curve"] for r in rows):
        pts = [r for r in rows if r["curve"] == curve]
        xs = [r["x"] for r in pts]
        mem = [r["peak_bytes"] for r in pts]
        mem_slope = f"{slope(xs, mem):.2f}" if min(mem) > 0 else "-"
        print(f"slope (log-log) {curve}: time {slope(xs, [r['seconds'] for r in pts]):.2f}, memory {mem_slope}")
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}; {title}")
    return rows


if __name__ == "__main__":
    main()
