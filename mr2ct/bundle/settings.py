"""One typed description per bundle of the settings its configs hold as top-level keys, and their checks.

Each setting is a field of a frozen dataclass: its type, a one-line description and the check of its value
(which may normalise it: ``"true"`` given on the command line becomes ``True``). Settings that depend on each
other (sizes and the method's network dimensions, the decay and the epochs, the const loss and the method) are
checked together in ``check_together``. :func:`mr2ct.bundle.complete` runs both on every bundle config
before any work, so a bad value is refused with one line naming the key::

    config key 'method' is 'cnn'; choose one of 3d, random, sequential, seq_const.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mr2ct.data.datasets import CACHE_MODES
from mr2ct.engine.losses import ADVERSARIAL_LOSSES, CHROMA_AFFINITIES, WARP_MASKS, MINDLoss
from mr2ct.engine.methods import METHODS, get_method
from mr2ct.engine.performance import AMP_DTYPES
from mr2ct.networks.resnet_generator import CONV_MODES, UPSAMPLE_MODES, generator_min_size
from mr2ct.networks.video_discriminator import DISCRIMINATOR_VIEWS

__all__ = [
    "CycleGANSettings",
    "DigitVideoSettings",
    "GTASettings",
    "MRCTSettings",
    "VideoSettings",
    "parse_flag",
    "settings_class",
]

Check = Callable[[str, Any], Any]


def parse_flag(name: str, value: bool | str) -> bool:
    """``value`` of config key ``name`` as a bool: ``True``/``False``, or ``"true"``/``"false"`` in any case (what
    ``python -m monai.bundle run --overwrite true`` passes: a string, which would always count as true)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"config key {name!r} must be true or false, got {value!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"config key {name!r} must be a positive integer, got {value!r}.")
    return value


def nonnegative_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"config key {name!r} must be an integer >= 0, got {value!r}.")
    return value


def optional_nonnegative_int(name: str, value: Any) -> int | None:
    if value is not None and (not _is_int(value) or value < 0):
        raise ValueError(f"config key {name!r} must be null or an integer >= 0, got {value!r}.")
    return value


def optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def positive_number(name: str, value: Any) -> float:
    if not _is_number(value) or not value > 0:
        raise ValueError(f"config key {name!r} must be > 0, got {value!r}.")
    return value


def nonnegative_number(name: str, value: Any) -> float:
    if not _is_number(value) or not value >= 0:
        raise ValueError(f"config key {name!r} must be >= 0, got {value!r}.")
    return value


def cycle_weight(name: str, value: Any) -> float | list[float]:
    """One weight >= 0 for both cycles, or a list of two (the cycle from A, the cycle from B)."""
    weights = value if isinstance(value, (list, tuple)) else [value]
    if len(weights) not in (1, 2) or not all(_is_number(w) and w >= 0 for w in weights):
        raise ValueError(f"config key {name!r} must be a number >= 0, or two of them [from A, from B], got {value!r}.")
    return list(value) if isinstance(value, (list, tuple)) else value


def fraction(name: str, value: Any) -> float:
    if not _is_number(value) or not 0 <= value < 1:
        raise ValueError(f"config key {name!r} must be a number in [0, 1), got {value!r}.")
    return value


def choice(*choices: str) -> Check:
    """A check that the value is one of ``choices``."""

    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"config key {name!r} is {value!r}; choose one of {', '.join(choices)}.")
        return value

    return check


def sizes(count: int) -> Check:
    """A check that the value is a list of ``count`` positive integers."""

    def check(name: str, value: Any) -> list[int]:
        if not isinstance(value, (list, tuple)) or len(value) != count:
            raise ValueError(f"config key {name!r} must be a list of {count} sizes, got {value!r}.")
        return [positive_int(name, v) for v in value]

    return check


def existing_path(name: str, value: Any) -> Any:
    """A path that must exist when given (None: not given)."""
    if value is not None and not Path(value).exists():
        raise FileNotFoundError(f"config key {name!r}: {value} does not exist.")
    return value


def setting(check: Check, doc: str) -> Any:
    """A settings field: its ``check`` and a one-line description (``None``: absent from the running config)."""
    return field(default=None, metadata={"check": check, "doc": doc})


def _amp_dtype(name: str, value: Any) -> str:
    if value not in AMP_DTYPES:
        raise ValueError(f"config key {name!r} must be {' or '.join(map(repr, AMP_DTYPES))}, got {value!r}.")
    return value


@dataclass(frozen=True)
class CycleGANSettings:
    """The settings every bundle shares (defaults in ``bundles/common/configs/*.json``).

    Field order is check order: ``method`` comes first because other settings are derived from it.
    """

    DIRECTIONS: ClassVar[tuple[str, ...]] = ("a2b", "b2a")

    method: str = setting(choice(*METHODS), "3d, random, sequential or seq_const (mr2ct.engine.methods)")
    seed: int = setting(nonnegative_int, "seed of the data, the initial weights and the data order")
    channels: int = setting(positive_int, "image channels of both domains")
    ngf: int = setting(positive_int, "generator base channels")
    ndf: int = setting(positive_int, "discriminator base channels")
    num_res_blocks: int = setting(nonnegative_int, "residual blocks of the generator")
    gen_strides: int | list[int] = setting(lambda name, value: value, "generator down-sampling, 1 or 2 (or per axis)")
    gen_upsample: str = setting(
        choice(*UPSAMPLE_MODES),
        "generator up-sampling: transposed convolution, resize then convolution, conv_linear or transposed_box",
    )
    gen_outer_kernel: int | list[int] = setting(
        lambda name, value: value, "kernel of the generator's first and last convolutions (or per axis)"
    )
    gen_sampling_kernel: int | list[int] = setting(
        lambda name, value: value, "kernel of the generator's down- and up-sampling convolutions (or per axis)"
    )
    gen_conv: str = setting(
        choice(*CONV_MODES), "generator's inner convolutions: full 3-wide, or 2+1d (per frame, then along time)"
    )
    d_layers: int = setting(positive_int, "strided layers of the PatchGAN discriminator")
    d_max_downsampling: list[int | None] | None = setting(
        lambda name, value: value, "most stride-2 layers of the discriminator per axis"
    )
    d_view: str = setting(
        choice(*DISCRIMINATOR_VIEWS), "3D methods' discriminator on whole clips, on each frame, or both"
    )
    adversarial: str = setting(choice(*ADVERSARIAL_LOSSES), "adversarial loss")
    lambda_cycle: float | list[float] = setting(
        cycle_weight, "weight of the cycle loss, or [from A, from B] (CycleGAN's lambda_A, lambda_B)"
    )
    lambda_identity: float = setting(nonnegative_number, "weight of the identity loss, relative to lambda_cycle")
    lambda_const: float = setting(nonnegative_number, "weight of the temporal const loss (seq_const)")
    lambda_warp: float = setting(
        nonnegative_number, "weight of the temporal loss along the input's optical flow (not random frames)"
    )
    warp_mask: str = setting(
        choice(*WARP_MASKS), "pixels lambda_warp holds: not occluded, or where the input is carried by its flow"
    )
    warp_warmup: int = setting(nonnegative_int, "iterations over which lambda_warp ramps up from 0 (0: none)")
    lambda_structure: float = setting(
        nonnegative_number, "weight of the MIND structure loss between input and translation"
    )
    structure_channels: str = setting(
        choice(*MINDLoss.CHANNEL_MODES), "MIND on each channel, or on the mean over channels (colour images)"
    )
    lambda_chroma: float = setting(
        nonnegative_number, "weight of the colourisation prior: one colour where the input is flat (colour outputs)"
    )
    chroma_affinity: str = setting(
        choice(*CHROMA_AFFINITIES), "input pixels alike for lambda_chroma by grey level (intensity) or by colour"
    )
    lambda_paired: float = setting(
        nonnegative_number, "weight of the L1 loss on registered pairs, when pairs are given"
    )
    pool_size: int = setting(nonnegative_int, "fake-image pool size (0: no pool)")
    lr: float = setting(positive_number, "Adam learning rate")
    max_epochs: int = setting(positive_int, "training epochs")
    decay_epochs: int = setting(lambda name, value: value, "last epochs of linear learning-rate decay")
    gen_average_epochs: int = setting(
        lambda name, value: value, "last epochs over which the generators' weights are averaged (0: none)"
    )
    epoch_length: int | None = setting(optional_positive_int, "iterations per epoch (null: the loader's length)")
    clips_per_batch: int = setting(positive_int, "clips loaded per iteration")
    frames_per_batch: int | None = setting(optional_positive_int, "frames per batch of method random")
    crop_depth: int | None = setting(
        optional_positive_int, "train on random windows of this many frames of each clip (null: whole clips)"
    )
    train_flip: bool = setting(parse_flag, "mirror each training clip left-right with probability 0.5")
    cache: str = setting(
        choice(*CACHE_MODES),
        "training data: memory (all preprocessed in RAM), disk (preprocessed once into cache_dir) or none",
    )
    max_nonfinite_steps: int | None = setting(optional_nonnegative_int, "consecutive non-finite steps that stop")
    resume: bool = setting(parse_flag, "continue from the latest checkpoint")
    ckpt_n_saved: int | None = setting(optional_positive_int, "training checkpoints kept (null: all)")
    distributed: bool = setting(parse_flag, "train in a torchrun process group (multi_gpu_train.json)")
    amp: bool = setting(parse_flag, "autocast in amp_dtype")
    amp_dtype: str = setting(_amp_dtype, "bfloat16 or float16 (CUDA)")
    channels_last: bool = setting(parse_flag, "channels-last memory format")
    compile: bool = setting(parse_flag, "torch.compile the networks")
    checkpoint_blocks: bool = setting(parse_flag, "activation checkpointing of the residual blocks")
    fused_adam: bool = setting(parse_flag, "fused Adam (CUDA)")
    cudnn_benchmark: bool = setting(parse_flag, "cuDNN autotuning")
    direction: str = setting(lambda name, value: value, "translation of evaluation / inference")
    overwrite: bool = setting(parse_flag, "replace existing inference outputs")
    sw_batch_size: int = setting(positive_int, "sliding windows per forward pass")
    sw_overlap: float = setting(fraction, "overlap of sliding windows")
    input_dir: str | None = setting(existing_path, "inference input folder")

    @classmethod
    def names(cls) -> list[str]:
        """The settings' names, in check order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def check_value(cls, name: str, value: Any) -> Any:
        """``value`` of setting ``name`` checked (and normalised); ``ValueError`` naming the key otherwise."""
        if name == "direction" and value not in cls.DIRECTIONS:
            raise ValueError(f"config key 'direction' is {value!r}; choose one of {', '.join(cls.DIRECTIONS)}.")
        return {f.name: f for f in dataclasses.fields(cls)}[name].metadata["check"](name, value)

    @classmethod
    def check_together(cls, values: Mapping[str, Any]) -> None:
        """Checks between settings (those of ``values`` present): shapes against the network dimensions,
        strides, the schedule, the const and warp losses and the frames of ``random``."""
        method = get_method(values.get("method", "3d"))
        dims = method.spatial_dims
        per_axis_rules = {
            "gen_strides": ("1 or 2", lambda s: not isinstance(s, bool) and s in (1, 2), 2),
            "gen_outer_kernel": ("an odd positive integer", lambda k: _is_int(k) and k >= 1 and k % 2 == 1, 7),
            "gen_sampling_kernel": ("an odd positive integer", lambda k: _is_int(k) and k >= 1 and k % 2 == 1, 3),
        }
        per_axis: dict[str, list[int]] = {}
        for name, (what, valid, default) in per_axis_rules.items():
            value = values.get(name, default)
            per_axis[name] = value if isinstance(value, list) else [value] * dims
            if len(per_axis[name]) != dims or not all(valid(v) for v in per_axis[name]):
                raise ValueError(
                    f"config key {name!r} must be {what}, or a list of {dims} of them (one per axis), got {value!r}."
                )
        min_size = generator_min_size(per_axis["gen_strides"], per_axis["gen_outer_kernel"])
        for name, axis_sizes in cls._convolved_sizes(values, dims).items():
            if any(size < min_size[axis] for axis, size in axis_sizes.items()):
                needed = [min_size[axis] for axis in axis_sizes]
                raise ValueError(
                    f"config key {name!r} is {values[name]!r}: with gen_strides {per_axis['gen_strides']} and "
                    f"gen_outer_kernel {per_axis['gen_outer_kernel']} the generator needs >= {needed} there "
                    "(an unstrided axis needs more voxels than half its outer kernel: lower the kernel or stride it)."
                )
        if any(s == 2 and k < 3 for s, k in zip(per_axis["gen_strides"], per_axis["gen_sampling_kernel"])):
            raise ValueError(
                f"config key 'gen_sampling_kernel' is {values['gen_sampling_kernel']!r}: along the axes that "
                f"gen_strides {per_axis['gen_strides']} strides it must be >= 3 (a 1-wide stride-2 convolution skips "
                "every other voxel)."
            )
        if values.get("gen_conv") == "2+1d" and dims != 3:
            raise ValueError(
                f"config key 'gen_conv' is '2+1d', which factorises 3D convolutions; method {method.name!r} is "
                "frame-wise (2D): set it to 'full'."
            )
        for key in ("decay_epochs", "gen_average_epochs"):
            if key in values:
                epochs = values[key]
                if not _is_int(epochs) or not 0 <= epochs <= values.get("max_epochs", epochs):
                    raise ValueError(f"config key {key!r} must be in [0, max_epochs], got {epochs!r}.")
        if "method" in values and "lambda_const" in values:
            if method.lambda_const > 0 and not values["lambda_const"] > 0:
                raise ValueError(f"config key 'lambda_const' must be > 0 for method {method.name!r}.")
            if method.lambda_const == 0 and values["lambda_const"] > 0:
                raise ValueError(
                    f"config key 'lambda_const' applies to method 'seq_const' only (method is "
                    f"{method.name!r}); set it to 0."
                )
        if method.batch == "random" and values.get("lambda_warp", 0) > 0:
            raise ValueError(
                "config key 'lambda_warp' needs frames in temporal order (methods 3d, sequential, seq_const); method"
                f" {method.name!r} draws frames at random: set it to 0."
            )
        if method.batch == "random" and "frames_per_batch" in values:
            positive_int("frames_per_batch", values["frames_per_batch"])

    @classmethod
    def _convolved_sizes(cls, values: Mapping[str, Any], dims: int) -> dict[str, dict[int, int]]:
        """``{key: {generator axis: size}}`` for the shape keys present (axes of a ``dims``-D generator)."""
        return {}

    @classmethod
    def check(cls, values: Mapping[str, Any]) -> CycleGANSettings:
        """Check ``{name: value}`` (any subset of the settings); returns the typed settings (absent: None)."""
        unknown = set(values) - set(cls.names())
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(cls.names())}.")
        checked = {name: cls.check_value(name, values[name]) for name in cls.names() if name in values}
        cls.check_together(checked)
        return cls(**checked)


@dataclass(frozen=True)
class VideoSettings(CycleGANSettings):
    """Settings of the video bundles: clips of ``depth`` frames of ``size`` pixels."""

    depth: int = setting(positive_int, "frames per clip")
    size: list[int] = setting(sizes(2), "frame height and width")
    eval_split: str = setting(choice("test", "val"), "held-out split of validation and evaluation")

    @classmethod
    def _convolved_sizes(cls, values: Mapping[str, Any], dims: int) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        if dims == 3:  # time is the 3D generator's first axis; a frame-wise one sees frames only
            out.update({key: {0: values[key]} for key in ("depth", "crop_depth") if values.get(key) is not None})
        if "size" in values:
            out["size"] = {dims - 2 + i: n for i, n in enumerate(values["size"])}
        return out

    @classmethod
    def check_together(cls, values: Mapping[str, Any]) -> None:
        super().check_together(values)
        crop, depth = values.get("crop_depth"), values.get("depth")
        if crop is not None and depth is not None and crop > depth:
            raise ValueError(f"config key 'crop_depth' is {crop}, more than the clips' depth ({depth} frames).")


@dataclass(frozen=True)
class DigitVideoSettings(VideoSettings):
    """Settings of the MNIST-derived bundles (volumetric and coloured moving MNIST)."""

    images_idx: str | None = setting(existing_path, "MNIST images IDX file (null: the bundled digits)")
    labels_idx: str | None = setting(existing_path, "MNIST labels IDX file")
    val_fraction: float = setting(fraction, "share of the training digits held out as the 'val' split")

    @classmethod
    def check_together(cls, values: Mapping[str, Any]) -> None:
        super().check_together(values)
        if values.get("eval_split") == "val" and values.get("val_fraction", 0) == 0:
            raise ValueError(
                "config key 'eval_split' is 'val' but val_fraction is 0: the data set has no validation split; "
                "set val_fraction (e.g. 0.1: a tenth of the training digits held out of training)."
            )


@dataclass(frozen=True)
class GTASettings(VideoSettings):
    """Settings of the GTA segmentation <-> video bundle."""

    source: str | None = setting(
        lambda name, value: value if value == "procedural" else existing_path(name, value),
        "VIPER folder or video + label frames (null or 'procedural': the built-in scene)",
    )
    val_source: str | None = setting(
        existing_path, "validation sequences for eval_split 'val' with a source of your own (null: a second scene)"
    )
    val_scene_seed: int = setting(nonnegative_int, "seed of the procedural validation scene of eval_split 'val'")

    @classmethod
    def check_together(cls, values: Mapping[str, Any]) -> None:
        super().check_together(values)
        if values.get("eval_split") != "val":
            return
        own_source = values.get("source") not in (None, "procedural")
        if own_source and values.get("val_source") is None:
            raise ValueError(
                "config key 'eval_split' is 'val' but val_source is null: with a source of your own, give a folder "
                "of validation sequences (e.g. the VIPER root, whose val/ split is read)."
            )
        if not own_source and values.get("val_scene_seed") == values.get("seed"):
            raise ValueError(
                f"config key 'val_scene_seed' equals 'seed' ({values.get('seed')}): the validation scene would be "
                f"the training scene; choose another val_scene_seed."
            )


@dataclass(frozen=True)
class MRCTSettings(CycleGANSettings):
    """Settings of the MR <-> CT bundle: volumes of ``volume_size`` = (slices, x, y)."""

    DIRECTIONS: ClassVar[tuple[str, ...]] = ("mr2ct", "ct2mr")

    volume_size: list[int] = setting(sizes(3), "network volume (slices, x, y)")
    mr_dir: str | None = setting(existing_path, "unpaired MR training folder")
    ct_dir: str | None = setting(existing_path, "unpaired CT training folder (evaluation: paired CTs)")
    datalist: str | None = setting(existing_path, "JSON datalist of training volumes")
    val_mr_dir: str | None = setting(existing_path, "validation MR folder")
    val_ct_dir: str | None = setting(existing_path, "validation CT folder (registered to val_mr_dir)")
    val_mask_dir: str | None = setting(existing_path, "validation body masks")
    mask_dir: str | None = setting(existing_path, "evaluation body masks")
    tissue_dir: str | None = setting(existing_path, "evaluation tissue maps (0 air, 1 soft tissue, 2 bone)")
    paired_mr_dir: str | None = setting(existing_path, "registered MR of the few training pairs")
    paired_ct_dir: str | None = setting(existing_path, "registered CT of the few training pairs")
    paired_datalist: str | None = setting(existing_path, "JSON datalist of the few training pairs")
    uncertainty: bool = setting(parse_flag, "write / evaluate a per-voxel confidence map")

    @classmethod
    def _convolved_sizes(cls, values: Mapping[str, Any], dims: int) -> dict[str, dict[int, int]]:
        if "volume_size" not in values:
            return {}
        return {"volume_size": dict(enumerate(values["volume_size"][3 - dims :]))}


_BUNDLE_SETTINGS: dict[str, type[CycleGANSettings]] = {
    "mrct_cyclegan3d": MRCTSettings,
    "vmnist_cyclegan3d": DigitVideoSettings,
    "mmnist_color_cyclegan3d": DigitVideoSettings,
    "gta_seg2video_cyclegan3d": GTASettings,
}


def settings_class(bundle: str) -> type[CycleGANSettings]:
    """The settings description of ``bundle`` (a bundle of another name: the shared :class:`CycleGANSettings`)."""
    return _BUNDLE_SETTINGS.get(bundle, CycleGANSettings)
