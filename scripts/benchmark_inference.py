"""Time whole-volume translation as the MR<->CT bundle's inference does it (blended sliding windows).

Usage::

    python scripts/benchmark_inference.py --volume 30 256 256 --roi 30 256 256 --ngf 64 --blocks 9
    python scripts/benchmark_inference.py --volume 120 256 256 --roi 30 256 256 --overlap 0.25

Prints a markdown table row: volume and window shapes (slices x rows x columns), generator size, device,
number of windows, seconds per volume (median of ``--repeats`` after ``--warmup``) and peak CUDA memory.
Weights are random: the time does not depend on them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from monai.inferers import SlidingWindowInferer

from mr2ct.networks import ResnetGenerator, count_parameters, init_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volume", type=int, nargs=3, default=[30, 256, 256], metavar=("D", "H", "W"))
    parser.add_argument("--roi", type=int, nargs=3, default=[30, 256, 256], metavar=("D", "H", "W"))
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--sw-batch-size", type=int, default=1)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    network = init_weights(ResnetGenerator(3, 1, 1, args.ngf, args.blocks)).to(args.device).eval()
    inferer = SlidingWindowInferer(args.roi, sw_batch_size=args.sw_batch_size, overlap=args.overlap,
                                   mode="gaussian", padding_mode="replicate")
    volume = torch.rand(1, 1, *args.volume, device=args.device) * 2 - 1
    windows = []

    def counted(x: torch.Tensor) -> torch.Tensor:
        windows.append(len(x))
        return network(x)

    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            windows.clear()
            inferer(volume, counted)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if args.device.startswith("cuda") else "-"
    device = (torch.cuda.get_device_name() if args.device.startswith("cuda")
              else f"CPU x{torch.get_num_threads()} ({platform.processor() or platform.machine()})")
    print("| volume | window | overlap | ngf | blocks | parameters | device | windows | s / volume | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {'x'.join(map(str, args.volume))} | {'x'.join(map(str, args.roi))} | {args.overlap} | {args.ngf} "
          f"| {args.blocks} | {count_parameters(network) / 1e6:.1f}M | {device} | {sum(windows)} "
          f"| {statistics.median(times):.2f} | {peak} |")
    print(f"torch {torch.__version__}, {args.repeats} timed volumes after {args.warmup} warm-up")


if __name__ == "__main__":
    main()
