"""Weight initialisation, parameter counting and parameter-matched network widths."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from functools import cache

import torch.nn as nn
from monai.networks.utils import normal_init

__all__ = ["count_parameters", "init_weights", "matched_width"]


def init_weights(network: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise conv weights from N(0, ``std``) and biases to 0, as CycleGAN does; returns ``network``."""
    network.apply(lambda m: normal_init(m, std=std))
    return network


def count_parameters(network: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``network``."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad or not trainable_only)


def matched_width(build: Callable[[int], nn.Module], target_parameters: int, max_width: int = 1024) -> int:
    """The width (``channels``) at which ``build(width)`` has the parameter count closest to the target.

    Used to give the paper's 2D baselines as many parameters as the 3D model (section 5.2: "the same for all
    models"), e.g. ``matched_width(lambda c: ResnetGenerator(2, 1, 1, c), count_parameters(g3d))``.
    """
    if target_parameters < 1:
        raise ValueError(f"target_parameters must be positive, got {target_parameters}.")
    count = cache(lambda width: count_parameters(build(width)))  # each width built once
    # parameter counts grow with width: double the width until it reaches the target (never building a network
    # much wider than the answer), bisect for the narrowest width that does, then take it or the one below it,
    # whichever is closer (the narrower on a tie)
    high = 1
    while high < max_width and count(high) < target_parameters:
        high = min(2 * high, max_width)
    width = bisect_left(range(high + 1), target_parameters, lo=high // 2 + 1, hi=high, key=count)
    if width == 1:
        return 1
    return width - 1 if target_parameters - count(width - 1) <= abs(count(width) - target_parameters) else width
