"""Weight initialisation and parameter counting."""

from __future__ import annotations

import torch.nn as nn
from monai.networks.utils import normal_init

__all__ = ["count_parameters", "init_weights"]


def init_weights(network: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise conv weights from N(0, ``std``) and biases to 0, as CycleGAN does; returns ``network``."""
    network.apply(lambda m: normal_init(m, std=std))
    return network


def count_parameters(network: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``network``."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad or not trainable_only)
