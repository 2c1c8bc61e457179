"""Side by side in one process: forward + backward of the ResNet generator with each upsampling mode
(``gen_upsample``), the modes taking turns step by step so that all see the same machine load.

    python scripts/bench_upsampling.py --shape 16x48x48:1:8:3 --steps 10        # the MR<->CT quick generator
    python scripts/bench_upsampling.py --device cuda --shape 30x256x256:1:64:9 --steps 10

Prints the median seconds per step of each mode and its ratio to ``transposed``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mr2ct.benchmarks.measure import device_name, synchronize
from mr2ct.benchmarks.training_step import parse_shape
from mr2ct.engine.performance import to_channels_last
from mr2ct.networks import ResnetGenerator
from mr2ct.networks.resnet_generator import UPSAMPLE_MODES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--shape", default="16x48x48:1:8:3", help="DxHxW:channels:ngf:blocks")
    parser.add_argument("--modes", nargs="+", default=list(UPSAMPLE_MODES), choices=UPSAMPLE_MODES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    shape = parse_shape(args.shape)
    device = torch.device(args.device)
    torch.manual_seed(0)
    channels, ngf, blocks = shape["channels"], shape["ngf"], shape["blocks"]
    x = torch.randn(1, channels, *shape["shape"], device=device)
    nets = {
        mode: ResnetGenerator(3, channels, channels, channels=ngf, num_res_blocks=blocks, upsample=mode).to(device)
        for mode in args.modes
    }
    if args.channels_last:
        x = to_channels_last(x)
        nets = {mode: net.to(memory_format=torch.channels_last_3d) for mode, net in nets.items()}
    times: dict[str, list[float]] = {mode: [] for mode in nets}
    for step in range(args.warmup + args.steps):
        for mode, net in nets.items():
            synchronize(device)
            start = time.perf_counter()
            net(x).float().mean().backward()
            synchronize(device)
            if step >= args.warmup:
                times[mode].append(time.perf_counter() - start)
    reference = statistics.median(times["transposed"]) if "transposed" in times else None
    print(f"generator {args.shape}, {device_name(device)}, torch {torch.__version__}, median of {args.steps} steps")
    print("| gen_upsample | forward + backward s | vs transposed |\n|---|---|---|")
    for mode, values in times.items():
        median = statistics.median(values)
        ratio = f"{median / reference:.2f}x" if reference else "-"
        print(f"| {mode} | {median:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
