"""The paper's experiments the comparison runner reproduces (their bundles, table columns and published numbers)
and its presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PRESETS", "TASKS", "Task"]


@dataclass(frozen=True)
class Task:
    """A paper experiment: its bundle, the table's columns (``{column: metric name in the evaluation report}``),
    the paper's published numbers (mean, sigma or None) and the reference row.

    ``reference_row`` is ``"identity"`` (the untranslated input, evaluated like a method) or ``"ground truth"``,
    whose values are the report's ``reference_metrics`` (``{column: report metric}``; a column not listed is 0:
    the ground truth compared with itself). ``val_split``: how the task's validation split (``split="val"``) is
    drawn: ``"fraction"`` (``val_fraction`` of the training digits held out of training), ``"scene"`` (GTA: a
    second procedural scene) or None (no validation split).
    """

    bundle: str
    table: str
    metrics: dict[str, str]
    paper: dict[str, dict[str, tuple[float, float | None]]]
    reference_row: str
    reference_metrics: dict[str, str] | None = None
    notes: tuple[str, ...] = ()
    val_split: str | None = None


_TEMPORAL_NOTE = (
    "warping_error: Lai et al. (2018) on [0, 1] frames, the output warped with the Farneback flow of the "
    "ground truth (not FlowNet2), occlusions masked; tof: TecoGAN's mean |flow(output) - flow(ground "
    "truth)| in pixels (mr2ct.metrics.temporal; not in the paper)."
)

TASKS = {
    "vmnist": Task(
        bundle="vmnist_cyclegan3d",
        table="Table 2: volumetric MNIST, L2 between translation and ground truth",
        metrics={"l2": "l2"},
        paper={
            "3d": {"l2": (27.21, 5.27)},
            "random": {"l2": (48.73, 13.72)},
            "sequential": {"l2": (41.73, 11.40)},
            "seq_const": {"l2": (73.41, 5.26)},
        },
        reference_row="identity",
        notes=(
            "l2: per-video RMSE over all voxels on [0, 255]; sigma: its std over held-out videos. The paper "
            "does not state its reduction.",
        ),
        val_split="fraction",
    ),
    "mmnist": Task(
        bundle="mmnist_color_cyclegan3d",
        table="Table 1: coloured moving MNIST (white -> colour)",
        metrics={
            "shape_l2": "shape_l2",
            "intensity_mean": "intensity_mean",
            "colour_sigma": "colour_sigma",
            "colour_flicker": "colour_flicker",
            "flicker": "flicker",
            "warping_error": "warping_error",
            "tof": "tof",
        },
        paper={
            "ground truth": {"intensity_mean": (175.37, None), "colour_sigma": (32.25, None)},
            "3d": {"shape_l2": (0.79, None), "intensity_mean": (204.36, None), "colour_sigma": (45.65, None)},
            "random": {"shape_l2": (1.48, None), "intensity_mean": (139.38, None), "colour_sigma": (64.51, None)},
            "sequential": {"shape_l2": (0.84, None), "intensity_mean": (205.49, None), "colour_sigma": (53.96, None)},
            "seq_const": {"shape_l2": (0.90, None), "intensity_mean": (198.18, None), "colour_sigma": (54.06, None)},
        },
        reference_row="ground truth",
        reference_metrics={
            "intensity_mean": "gt_intensity_mean",
            "colour_sigma": "gt_colour_sigma",
            "colour_flicker": "gt_colour_flicker",
        },
        notes=(
            "shape_l2: L2 norm of the binary digit-mask difference relative to the ground truth's mask norm "
            "(1 = empty output; the paper does not state its normalisation); intensity_mean and colour_sigma on "
            "[0, 255] digit pixels; colour_flicker: "
            "std over time of the mean digit colour (not in the paper); flicker: METRICS.md's, per digit (the "
            "translation's mean absolute change between consecutive frames inside the true digit, minus the ground "
            "truth's).",
            _TEMPORAL_NOTE,
        ),
        val_split="fraction",
    ),
    "gta": Task(
        bundle="gta_seg2video_cyclegan3d",
        table="Table 4: GTA video -> segmentation, per-frame pixel accuracy",
        metrics={
            "accuracy_slow": "pixel_accuracy_slow",
            "accuracy_all": "pixel_accuracy",
            "transition_l2": "transition_l2_d0",
            "label_flicker": "label_flicker",
            "warping_error": "warping_error",
            "tof": "tof",
        },
        paper={
            "3d": {"accuracy_slow": (0.54, None), "accuracy_all": (0.55, None)},
            "random": {"accuracy_slow": (0.46, None), "accuracy_all": (0.65, None)},
            "sequential": {"accuracy_slow": (0.64, None), "accuracy_all": (0.71, None)},
            "seq_const": {"accuracy_slow": (0.56, None), "accuracy_all": (0.68, None)},
        },
        reference_row="identity",
        notes=(
            "accuracy: per-frame pixel accuracy after decoding each translated pixel to the nearest VIPER palette "
            "colour's class, mean over frames then over clips; slow: the test clips with the least camera motion "
            "(at most the median); transition_l2: L2 between the class-transition matrices of translated and true "
            "segmentation videos, no denoising (not in the paper's table); label_flicker: the fraction of pixels "
            "whose class changes between consecutive frames, translation minus ground truth (METRICS.md's flicker "
            "on class labels; not in the paper). The paper also lists 200M-parameter "
            "models (3D 0.77/0.72, 2D 0.60/0.70). identity: the RGB input itself decoded to the palette.",
            _TEMPORAL_NOTE,
        ),
        val_split="scene",
    ),
}

# what changes per preset, on top of the bundle's configs (quick: train.json + quick.json)
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "configs": ("train.json", "quick.json"),
        "overrides": {"max_epochs": 10, "decay_epochs": 5, "epoch_length": 100, "val_interval": 1000},
        "eval_videos": 300,
    },
    "paper": {"configs": ("train.json",), "overrides": {"val_interval": 1000}, "eval_videos": None},
}
