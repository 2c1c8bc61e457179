"""How fast a bundle's training data loader delivers batches, to compare with the training step (``mr2ct bench``):
a loader slower than the step leaves the GPU waiting.

Usage::

    mr2ct bench data mrct_cyclegan3d --batches 20
    mr2ct bench data vmnist_cyclegan3d --quick --batches 50 --num_workers 4
    mr2ct bench data mrct_cyclegan3d --quick --sizes 50 200 1000 --modes memory disk none --batches 200

With ``--sizes``, resident memory against the data-set size: for each size ``N`` (volumes per domain, small
random NIfTI volumes of ``--volume`` written once under ``--data-root``) and each cache mode (the config key
``cache``), a fresh process builds the loader, reads every training volume once (the set-up: the memory cache's
fill, the disk cache's first epoch), then times ``--batches`` batches; the table gives the process's resident
memory (RSS) after that and its peak, and batches per second (MR -> CT bundle only).

Builds ``train#dataloader`` from the bundle's ``train.json`` (with ``quick.json`` for ``--quick``, and ``--key
value`` config overrides), which builds the synthetic data set the first time and fills the ``CacheDataset``
(timed as "set-up"), then takes ``--batches`` batches after one untimed batch (the workers' start). Reports
batches and clip pairs (one clip of each domain) per second.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mr2ct.benchmarks.measure import _proc_status, device_name, format_bytes, run_isolated
from mr2ct.bundle import bundle_root, load_config
from mr2ct.data.datasets import CACHE_MODES
from mr2ct.overrides import parse_overrides

__all__ = ["main", "measure", "write_volumes"]


def write_volumes(folder: str | Path, count: int, shape: tuple[int, int, int] = (8, 32, 32), seed: int = 0) -> tuple:
    """``count`` small random NIfTI volumes of ``shape`` per domain, ``<folder>/mr/mr_<i>.nii.gz`` (T1-like
    values) and ``<folder>/ct/ct_<i>.nii.gz`` (HU), the layout ``--mr_dir`` / ``--ct_dir`` read (existing files
    are kept); returns the two folders."""
    import numpy as np

    from mr2ct.io.nifti import write_nifti

    rng = np.random.default_rng(seed)
    out = []
    for domain, low, high in (("mr", 0.0, 1000.0), ("ct", -1000.0, 2000.0)):
        target = Path(folder) / domain
        target.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            volume = rng.uniform(low, high, size=shape).astype(np.float32)  # drawn even if kept: same values
            path = target / f"{domain}_{i:05d}.nii.gz"
            if not path.exists():
                write_nifti(path, volume, np.eye(4))
        out.append(target)
    return tuple(out)


def _batches(loader) -> Iterator:
    while True:  # epoch after epoch, as training does
        yield from loader


def measure(bundle: str, files: list[str], overrides: dict, batches: int = 20) -> dict:
    """Set up the ``train#dataloader`` of the bundle's training config (+ ``files``, e.g. its quick.json) with
    ``overrides`` and time ``batches`` batches after the first; returns the set-up time, the first batch's time,
    the per-batch times and the clips per batch."""
    parser = load_config(bundle, files=files, overrides=overrides)
    start = time.perf_counter()
    loader = parser.get_parsed_content("train#dataloader")
    setup = time.perf_counter() - start
    stream = _batches(loader)
    times = []
    for _ in range(batches + 1):
        start = time.perf_counter()
        next(stream)
        times.append(time.perf_counter() - start)
    return {
        "setup": setup,
        "first": times[0],
        "times": times[1:],
        "clips_per_batch": loader.batch_size,
        "num_workers": loader.num_workers,
    }


def measure_size(bundle: str, files: list[str], overrides: dict, batches: int) -> dict:
    """In this (fresh) process: the loader of ``overrides`` (a data set and a cache mode), every training volume
    read once, then ``batches`` timed batches; returns the times and the resident memory (now and peak)."""
    parser = load_config(bundle, files=files, overrides=overrides)
    start = time.perf_counter()
    loader = parser.get_parsed_content("train#dataloader")
    for name in ("train#data_a", "train#data_b"):
        dataset = parser.get_parsed_content(name)
        for i in range(len(dataset)):
            dataset[i]
    setup = time.perf_counter() - start
    stream = _batches(loader)
    next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    seconds = time.perf_counter() - start
    return {
        "setup": setup,
        "batches_per_s": batches / seconds,
        "rss": _proc_status("VmRSS"),
        "peak": _proc_status("VmHWM"),
    }


def scale_table(bundle: str, files: list[str], overrides: dict, args: argparse.Namespace) -> list[dict]:
    """The ``--sizes`` x ``--modes`` measurement, each in its own process; prints and returns the rows."""
    root = Path(args.data_root or tempfile.mkdtemp(prefix="mr2ct_bench_data_"))
    print("| volumes / domain | cache | set-up s | batches / s | RSS after | peak RSS | peak / smallest size's |")
    print("|---|---|---|---|---|---|---|")
    rows: list[dict] = []
    first_peak: dict = {}
    for size in args.sizes:
        mr, ct = write_volumes(root / f"n{size}", size, tuple(args.volume))
        for mode in args.modes:
            cache_dir = root / f"n{size}" / "cache"
            shutil.rmtree(cache_dir, ignore_errors=True)  # each disk run fills its cache from nothing
            job = {
                "bundle": bundle,
                "files": files,
                "overrides": {
                    **overrides,
                    "mr_dir": str(mr),
                    "ct_dir": str(ct),
                    "volume_size": list(args.volume),
                    "val_interval": 0,
                    "cache": mode,
                    "cache_dir": str(cache_dir),
                },
                "batches": args.batches,
            }
            result = run_isolated(__name__, job, f"{size} volumes, cache {mode}")
            first_peak.setdefault(mode, result["peak"])
            rows.append({"size": size, "mode": mode, **result})
            print(
                f"| {size} | {mode} | {result['setup']:.1f} | {result['batches_per_s']:.1f} "
                f"| {format_bytes(result['rss'])} | {format_bytes(result['peak'])} "
                f"| {result['peak'] / first_peak[mode]:.2f} |",
                flush=True,
            )
    print(
        f"{device_name('cpu')}, volumes {'x'.join(map(str, args.volume))} (float32 after preprocessing), "
        f"{args.batches} timed batches after the set-up, one process per row"
    )
    if not args.data_root:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> dict | list[dict]:
    """``mr2ct bench data BUNDLE [--quick] [--batches N] [--sizes N ...] [--key value ...]``: print and return the
    measurement."""
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--worker"]:
        job = json.loads(argv[1])
        print(json.dumps(measure_size(job["bundle"], job["files"], job["overrides"], job["batches"])))
        return {}
    # no abbreviations: the remaining arguments are bundle overrides (--size must not become --sizes)
    parser = argparse.ArgumentParser(prog="mr2ct bench data", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("bundle", help="bundle name under bundles/, e.g. mrct_cyclegan3d")
    parser.add_argument("--quick", action="store_true", help="add the bundle's quick.json")
    parser.add_argument("--batches", type=int, default=20, help="timed batches (after one untimed)")
    parser.add_argument("--sizes", type=int, nargs="+", help="data-set sizes (volumes per domain): memory vs size")
    parser.add_argument("--modes", nargs="+", default=list(CACHE_MODES), choices=CACHE_MODES, help="with --sizes")
    parser.add_argument("--volume", type=int, nargs=3, default=[16, 48, 48], help="with --sizes: D H W")
    parser.add_argument("--data-root", help="with --sizes: where the volumes are written (default: a temporary one)")
    args, extra = parser.parse_known_args(argv)
    if args.batches < 1:
        parser.error("--batches must be >= 1.")
    try:
        configs = Path(bundle_root(args.bundle)) / "configs"
    except FileNotFoundError as e:
        parser.error(str(e))
    files = [str(configs / "quick.json")] if args.quick else []
    if args.sizes:
        if args.bundle != "mrct_cyclegan3d":
            parser.error("--sizes writes NIfTI volumes: MR -> CT bundle (mrct_cyclegan3d) only.")
        if min(args.sizes) < 1 or min(args.volume) < 1:
            parser.error("--sizes and --volume must be positive.")
        return scale_table(args.bundle, files, {"bundle_root": str(configs.parent), **parse_overrides(extra)}, args)
    result = measure(args.bundle, files, {"bundle_root": str(configs.parent), **parse_overrides(extra)}, args.batches)
    per_batch = statistics.median(result["times"])
    print("| bundle | workers | clips / batch | set-up s | first batch s | s / batch | clip pairs / s |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.bundle}{' (quick)' if args.quick else ''} | {result['num_workers']} | {result['clips_per_batch']} "
        f"| {result['setup']:.1f} | {result['first']:.2f} | {per_batch:.4f} "
        f"| {result['clips_per_batch'] / per_batch:.1f} |"
    )
    print(f"{device_name('cpu')}, median of {args.batches} batches")
    return result


if __name__ == "__main__":
    main()
