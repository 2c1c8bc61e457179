"""How fast a bundle's training data loader delivers batches, to compare with the training step (``mr2ct bench``):
a loader slower than the step leaves the GPU waiting.

Usage::

    mr2ct bench data mrct_cyclegan3d --batches 20
    mr2ct bench data vmnist_cyclegan3d --quick --batches 50 --num_workers 4

Builds ``train#dataloader`` from the bundle's ``train.json`` (with ``quick.json`` for ``--quick``, and ``--key
value`` config overrides), which builds the synthetic data set the first time and fills the ``CacheDataset``
(timed as "set-up"), then takes ``--batches`` batches after one untimed batch (the workers' start). Reports
batches and clip pairs (one clip of each domain) per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from mr2ct.benchmarks.measure import device_name
from mr2ct.bundle import bundle_root, load_config
from mr2ct.overrides import parse_overrides

__all__ = ["main", "measure"]


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


def main(argv: list[str] | None = None) -> dict:
    """``mr2ct bench data BUNDLE [--quick] [--batches N] [--key value ...]``: print and return the measurement."""
    parser = argparse.ArgumentParser(prog="mr2ct bench data", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="bundle name under bundles/, e.g. mrct_cyclegan3d")
    parser.add_argument("--quick", action="store_true", help="add the bundle's quick.json")
    parser.add_argument("--batches", type=int, default=20, help="timed batches (after one untimed)")
    args, extra = parser.parse_known_args(argv)
    if args.batches < 1:
        parser.error("--batches must be >= 1.")
    try:
        configs = Path(bundle_root(args.bundle)) / "configs"
    except FileNotFoundError as e:
        parser.error(str(e))
    files = [str(configs / "quick.json")] if args.quick else []
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
