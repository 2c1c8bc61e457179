"""Time one CycleGAN training iteration (both generator and discriminator updates) at a given shape.

Usage::

    python scripts/benchmark.py --shape 30 84 84 --ngf 64 --blocks 9 --repeats 3
    python scripts/benchmark.py --shape 16 28 28 --ngf 8 --blocks 3 --method 3d

Prints a markdown table row: method, shape, channels, ngf, blocks, device, parameters, seconds per
iteration (median of ``--repeats`` after ``--warmup`` untimed ones) and peak CUDA memory when on a GPU.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time

import torch

from mr2ct.engine import CycleGANTrainer, batch_preparer, method_spatial_dims
from mr2ct.networks import PatchGANDiscriminator, ResnetGenerator, count_parameters, init_weights


def build_trainer(method: str, shape: tuple[int, int, int], channels: int, ngf: int, blocks: int, device: str,
                  frames_per_batch: int) -> tuple[CycleGANTrainer, dict]:
    """A CycleGAN trainer on one random clip batch, as the bundles build it."""
    dims = method_spatial_dims(method)
    size = shape if dims == 3 else shape[1:]
    g_ab, g_ba = (init_weights(ResnetGenerator(dims, channels, channels, ngf, blocks)).to(device) for _ in range(2))
    d_a, d_b = (init_weights(PatchGANDiscriminator(dims, channels, ngf, input_size=size)).to(device) for _ in range(2))
    g_opt = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
    batch = {"A": torch.rand(1, channels, *shape) * 2 - 1, "B": torch.rand(1, channels, *shape) * 2 - 1}
    trainer = CycleGANTrainer(device=device, max_epochs=1, train_data_loader=[batch], g_ab=g_ab, g_ba=g_ba, d_a=d_a,
                              d_b=d_b, g_optimizer=g_opt, d_optimizer=d_opt, clip_depth=shape[0],
                              prepare_batch=batch_preparer(method, frames_per_batch))
    trainer.state.device = device
    params = sum(count_parameters(n) for n in (g_ab, g_ba, d_a, d_b))
    return trainer, {"batch": batch, "params": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[30, 84, 84], metavar=("D", "H", "W"))
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--method", default="3d")
    parser.add_argument("--frames-per-batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    trainer, extra = build_trainer(args.method, tuple(args.shape), args.channels, args.ngf, args.blocks, args.device,
                                   args.frames_per_batch)
    times = []
    for i in range(args.warmup + args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer._iteration(trainer, extra["batch"])
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if args.device.startswith("cuda") else "-"
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()} ({platform.processor() or platform.machine()})"
    print("| method | shape | ch | ngf | blocks | device | parameters | s / iteration | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.method} | {'x'.join(map(str, args.shape))} | {args.channels} | {args.ngf} | {args.blocks} | {device} "
          f"| {extra['params'] / 1e6:.1f}M | {statistics.median(times):.3f} | {peak} |")
    print(f"torch {torch.__version__}, {args.repeats} timed iterations after {args.warmup} warm-up")


if __name__ == "__main__":
    main()
