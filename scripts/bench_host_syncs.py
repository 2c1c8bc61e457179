"""Side by side in one process: the training iteration with one device-to-host transfer (today's trainer) and the
one it replaced (each logged loss ``.item()``-ed on its own, the finite checks between them), alternating step by
step on the same trainer and batch, so that both see the same machine load.

    python scripts/bench_host_syncs.py --device cpu --shape 16x28x28:1:8:3 --steps 40
    python scripts/bench_host_syncs.py --device cuda --shape 30x84x84:1:64:9 --steps 20

Prints the median seconds per step of each and their ratio (> 1: the one-transfer step is faster).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from mr2ct.benchmarks.measure import device_name, synchronize
from mr2ct.benchmarks.training_step import build_trainer, parse_shape
from mr2ct.engine.distributed import nonfinite_on_any_rank
from mr2ct.engine.performance import to_channels_last


def per_loss_iteration(engine, batchdata):
    """The iteration as it was before one transfer (mr2ct before this change): one ``.item()`` per loss."""
    real_a, real_b = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
    if engine.channels_last:
        real_a, real_b = to_channels_last(real_a), to_channels_last(real_b)
    discriminators = (engine.d_a, engine.d_b)
    for d in discriminators:
        d.requires_grad_(False)
    g_out = engine._generator_update(real_a, real_b, None)
    for d in discriminators:
        d.requires_grad_(True)
    g_losses = {k: v for k, v in g_out.items() if k.startswith("loss_")}
    losses = {k: v.item() for k, v in g_losses.items()}
    nonfinite = nonfinite_on_any_rank([k for k, v in losses.items() if not math.isfinite(v)])
    if not nonfinite:
        d_losses = engine._discriminator_update(real_a, real_b, g_out["fake_a"], g_out["fake_b"])
        losses.update({k: v.item() for k, v in d_losses.items()})
        nonfinite = nonfinite_on_any_rank([k for k in d_losses if not math.isfinite(losses[k])])
        if not nonfinite and engine.amp and engine.scaler is None:
            finite = engine._gradient_flags().tolist()
            nonfinite = [n for n, ok in zip(("g_ab", "g_ba", "d_a", "d_b"), finite) if not ok]
    if not nonfinite:
        engine._step(engine.g_optimizer, engine.d_optimizer)
    return {"loss_g": sum(g_losses.values()).item(), **losses}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="16x28x28:1:8:3", help="DxHxW[:channels[:ngf[:blocks]]]")
    parser.add_argument("--opt", default="", help="switches, e.g. amp,channels_last")
    parser.add_argument("--steps", type=int, default=40, help="timed steps of each (alternating)")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    spec = parse_shape(args.shape)
    options = tuple(o for o in args.opt.split(",") if o)
    trainer, data = build_trainer(
        "3d", spec["shape"], spec["channels"], spec["ngf"], spec["blocks"], args.device, options=options
    )
    variants = {
        "one transfer": lambda: trainer.train_step(data),
        "per-loss .item()": lambda: per_loss_iteration(trainer, data),
    }
    times = {name: [] for name in variants}
    for step in range(args.warmup + args.steps):
        for name, run in variants.items():
            synchronize(args.device)
            start = time.perf_counter()
            run()
            synchronize(args.device)
            if step >= args.warmup:
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, m in med.items():
        print(f"{name:18s} {m * 1000:9.2f} ms / step (median of {args.steps})")
    print(f"per-loss / one-transfer time: {med['per-loss .item()'] / med['one transfer']:.3f}")
    print(f"{device_name(args.device)}, torch {torch.__version__}, shape {args.shape}, options {options or 'none'}")


if __name__ == "__main__":
    main()
