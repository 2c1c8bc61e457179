"""The Ignite CycleGAN workflow: trainer, batch formation, losses, image pool, schedule and handlers."""

from __future__ import annotations

from .averaging import GeneratorAverage, checkpoint_generators
from .batching import ClipBatch, RandomFrames, SequentialFrames
from .checkpoint import (
    SETTINGS_FILE,
    EndlessLoader,
    FinalWeightsSaver,
    RandomStates,
    ResumableLoader,
    TrainingCheckpointer,
    atomic_torch_save,
    check_weights_settings,
    latest_checkpoint,
)
from .handlers import LossCSVLogger, LossProgressBar, SampleGridSaver
from .image_pool import ImagePool
from .inferers import TaperedSlidingWindowInferer, taper_weights
from .losses import (
    MINDLoss,
    adversarial_loss,
    chroma_smoothness_loss,
    clip_motion,
    mind_descriptor,
    temporal_const_loss,
    temporal_warp_loss,
)
from .methods import METHODS, Method, get_method
from .schedule import LinearDecay
from .trainer import CycleGANTrainer, loss_values
from .uncertainty import AugmentationSpread, shift_volume
from .video_translator import VideoTranslator
from .volume_translator import TranslationResult, VolumeTranslator

__all__ = [
    "METHODS",
    "ClipBatch",
    "CycleGANTrainer",
    "EndlessLoader",
    "FinalWeightsSaver",
    "GeneratorAverage",
    "ImagePool",
    "LinearDecay",
    "LossCSVLogger",
    "MINDLoss",
    "LossProgressBar",
    "Method",
    "RandomFrames",
    "RandomStates",
    "ResumableLoader",
    "SETTINGS_FILE",
    "SampleGridSaver",
    "SequentialFrames",
    "TaperedSlidingWindowInferer",
    "AugmentationSpread",
    "TrainingCheckpointer",
    "TranslationResult",
    "VideoTranslator",
    "VolumeTranslator",
    "adversarial_loss",
    "atomic_torch_save",
    "chroma_smoothness_loss",
    "check_weights_settings",
    "checkpoint_generators",
    "clip_motion",
    "get_method",
    "latest_checkpoint",
    "loss_values",
    "mind_descriptor",
    "shift_volume",
    "taper_weights",
    "temporal_const_loss",
    "temporal_warp_loss",
]
