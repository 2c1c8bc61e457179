"""The Ignite CycleGAN workflow: trainer, batch formation, losses, image pool, schedule and handlers."""

from __future__ import annotations

from .batching import ClipBatch, RandomFrames, SequentialFrames
from .checkpoint import (
    FinalWeightsSaver,
    RandomStates,
    ResumableLoader,
    TrainingCheckpointer,
    atomic_torch_save,
    latest_checkpoint,
)
from .handlers import LossCSVLogger, LossProgressBar, SampleGridSaver
from .image_pool import ImagePool
from .losses import adversarial_loss, temporal_const_loss
from .methods import METHODS, Method, get_method
from .schedule import LinearDecay
from .trainer import CycleGANTrainer, loss_values
from .video_translator import VideoTranslator
from .volume_translator import TranslationResult, VolumeTranslator

__all__ = [
    "METHODS",
    "ClipBatch",
    "CycleGANTrainer",
    "FinalWeightsSaver",
    "ImagePool",
    "LinearDecay",
    "LossCSVLogger",
    "LossProgressBar",
    "Method",
    "RandomFrames",
    "RandomStates",
    "ResumableLoader",
    "SampleGridSaver",
    "SequentialFrames",
    "TrainingCheckpointer",
    "TranslationResult",
    "VideoTranslator",
    "VolumeTranslator",
    "adversarial_loss",
    "atomic_torch_save",
    "get_method",
    "latest_checkpoint",
    "loss_values",
    "temporal_const_loss",
]
