"""Generators and discriminators of the 3D CycleGAN and its frame-wise 2D baselines."""

from __future__ import annotations

from .framewise import FramewiseNetwork, frames_to_volume, volume_to_frames
from .patch_discriminator import PatchGANDiscriminator, patch_layer_strides
from .resnet_generator import BoxFilter, ResnetBlock, ResnetGenerator, generator_min_size
from .video_discriminator import DISCRIMINATOR_VIEWS, ClipAndFrameDiscriminator, video_discriminator
from .weights import count_parameters, init_weights, matched_width

__all__ = [
    "DISCRIMINATOR_VIEWS",
    "BoxFilter",
    "ClipAndFrameDiscriminator",
    "FramewiseNetwork",
    "PatchGANDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "count_parameters",
    "frames_to_volume",
    "generator_min_size",
    "init_weights",
    "matched_width",
    "patch_layer_strides",
    "video_discriminator",
    "volume_to_frames",
]
