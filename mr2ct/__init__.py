"""mr2ct: unsupervised volume-to-volume and video-to-video translation (3D CycleGAN) on MONAI and Ignite."""

from __future__ import annotations

__version__ = "0.1.0"
