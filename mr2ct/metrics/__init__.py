"""Metrics of the paper and beyond, computed on held-out data."""

from __future__ import annotations

from .digits import (
    colour_flicker,
    digit_colour_sigma,
    digit_intensity_mean,
    digit_masks,
    mean_and_sigma,
    shape_l2,
    volume_l2,
)
from .handlers import TRANSLATIONS, VideoMetric, synthrad_metric_handler, video_metric_handler
from .segmentation import (
    DENOISE_LEVELS,
    SEGMENTATION_METRICS,
    decode_palette,
    gta_metric_handlers,
    label_flicker,
    mean_iou,
    mode_filter,
    pixel_accuracy,
    segmentation_metric,
    segmentation_metric_handler,
    temporal_flicker,
    transition_l2,
    transition_matrix,
)
from .synthrad import HU_RANGE, SYNTHRAD_METRICS, body_mask, linear_fit, mae_hu, psnr_hu, ssim_hu
from .two_afc import REAL, AnswerError, Judgement, StudyKey, Trial, load_answers, preference_table

__all__ = [
    "DENOISE_LEVELS",
    "SEGMENTATION_METRICS",
    "decode_palette",
    "gta_metric_handlers",
    "label_flicker",
    "mean_iou",
    "mode_filter",
    "pixel_accuracy",
    "segmentation_metric",
    "segmentation_metric_handler",
    "temporal_flicker",
    "transition_l2",
    "transition_matrix",
    "HU_RANGE",
    "REAL",
    "AnswerError",
    "Judgement",
    "StudyKey",
    "Trial",
    "SYNTHRAD_METRICS",
    "TRANSLATIONS",
    "VideoMetric",
    "body_mask",
    "colour_flicker",
    "digit_colour_sigma",
    "digit_intensity_mean",
    "digit_masks",
    "linear_fit",
    "load_answers",
    "mae_hu",
    "mean_and_sigma",
    "preference_table",
    "psnr_hu",
    "shape_l2",
    "ssim_hu",
    "synthrad_metric_handler",
    "video_metric_handler",
    "volume_l2",
]
