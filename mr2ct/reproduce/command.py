"""Reproduce the paper's comparison: train every method on a task, evaluate on held-out videos, and write
the paper's table (ours beside the paper's numbers) and a Figure 6-style picture.

The command line of ``mr2ct reproduce`` and ``scripts/reproduce.py``; the package's docstring says what it writes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mr2ct.engine import METHODS
from mr2ct.reproduce.comparison import run_seeds
from mr2ct.reproduce.tasks import PRESETS, TASKS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the reproduction runner."""
    parser = argparse.ArgumentParser(prog="mr2ct reproduce", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed (default 0); same as --seeds SEED")
    seeds.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="train and evaluate every method once per seed"
    )
    parser.add_argument("--match-params", action="store_true", help="give 2D models the 3D models' parameter counts")
    parser.add_argument("--eval-videos", type=int, default=-1, help="held-out videos to evaluate (default: preset's)")
    parser.add_argument(
        "--curve", type=int, default=None, metavar="N", help="also evaluate every N iterations: curves.csv / .png"
    )
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="held-out split to evaluate: test, or val (vmnist, mmnist: --val-fraction of the training digits held "
        "out of training; gta: a second procedural scene; select settings here, not on test)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of training digits for --split val")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with a stopped run in --output: read back the methods it finished with these settings, resume "
        "an unfinished training from its latest checkpoint",
    )
    args = parser.parse_args(argv)
    output = args.output or Path("runs") / f"reproduce_{args.task}_{args.preset}{'_val' if args.split == 'val' else ''}"
    run_seeds(
        args.task,
        args.methods,
        args.preset,
        output,
        args.seeds or [0 if args.seed is None else args.seed],
        args.match_params,
        None if args.eval_videos == 0 else args.eval_videos,
        curve=args.curve,
        split=args.split,
        val_fraction=args.val_fraction,
        resume=args.resume,
    )
    print((output / "table.md").read_text(encoding="utf-8"))
    return 0
