"""Helpers that bundle configs call: where the bundle lives, which files a folder holds, and the checks that
refuse a bad configuration (unknown keys, impossible values, missing paths) before any work starts."""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

from monai.bundle import ConfigParser

from mr2ct.engine.batching import METHODS
from mr2ct.engine.losses import ADVERSARIAL_LOSSES
from mr2ct.engine.performance import AMP_DTYPES, PERFORMANCE_FLAGS

__all__ = [
    "bundle_root",
    "check_config_keys",
    "check_output_dir",
    "check_paths",
    "check_weights",
    "list_images",
    "parse_flag",
    "shared_transforms",
    "validate_settings",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii", ".nii.gz")
DIRECTIONS = ("a2b", "b2a", "mr2ct", "ct2mr")
MIN_SPATIAL_SIZE = 4  # ResnetGenerator's 7-wide reflection-padded stem needs >= 4 voxels per axis
# names other tools use for our keys, for the "did you mean" of check_config_keys
_KEY_ALIASES = {"learning_rate": "lr", "epochs": "max_epochs", "batch_size": "clips_per_batch"}


def bundle_root(name: str) -> str:
    """Folder of bundle ``name``: ``bundles/<name>`` under the current directory (running from the repository),
    the current directory itself (running from inside the bundle), or the repository of this package.

    Configs use it as the default ``bundle_root``; ``--bundle_root`` on the command line overrides it.
    """
    candidates = [Path("bundles") / name, Path("."), Path(__file__).resolve().parents[1] / "bundles" / name]
    for path in candidates:
        if (path / "configs" / "metadata.json").is_file() and (path.resolve().name == name or path != Path(".")):
            return str(path)
    raise FileNotFoundError(f"cannot find bundle {name!r}: run from the repository root or pass --bundle_root.")


def shared_transforms(file: str, chains: Sequence[str], **params) -> list:
    """Instantiate named transform chains of a shared config file in the repository's top-level ``transforms/``.

    The file holds parameters (``keys``, windows, sizes...) and lists of transform configs under chain names;
    ``params`` override the parameters. Example: ``shared_transforms("mrct.json", ["load", "ct_intensity"],
    keys=["B"])`` returns the transforms of both chains, in order, ready for a ``Compose``.
    """
    candidates = [Path("transforms") / file, Path(__file__).resolve().parents[1] / "transforms" / file]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"shared transform config {file!r} not found in {[str(c.parent) for c in candidates]}.")
    parser = ConfigParser()
    parser.read_config(path)
    unknown = [c for c in chains if not isinstance(parser.get(c), list)]
    if unknown:
        raise KeyError(f"{path} has no transform chain(s) {unknown}.")
    for key, value in params.items():
        if key not in parser.get():
            raise KeyError(f"{path} has no parameter {key!r}.")
        parser[key] = value
    return [t for chain in chains for t in parser.get_parsed_content(chain, instantiate=True)]


def _running_config() -> dict:
    """The config of the ``ConfigParser`` that evaluates the calling expression, found up the call stack (MONAI
    gives an expression no handle on its parser)."""
    frame = inspect.currentframe()
    while frame is not None:
        parser = frame.f_locals.get("self")
        if isinstance(parser, ConfigParser):
            return parser.get()
        frame = frame.f_back
    raise RuntimeError("check_config_keys must run inside a bundle config expression, e.g. its 'initialize' list.")


def _did_you_mean(key: str, known: set[str]) -> str:
    """`` (did you mean 'lr'?)`` for the known key closest to ``key``; empty if none is close."""
    match = _KEY_ALIASES.get(key) or next(iter(difflib.get_close_matches(key, known, n=1)), None)
    return f" (did you mean {match!r}?)" if match else ""


def check_config_keys(bundle: str) -> None:
    """Refuse top-level config keys that none of the bundle's config files defines: a mistyped override.

    ``--max_epoch 3`` on the command line (or ``ConfigWorkflow(..., max_epoch=3)``) adds a key that nothing reads,
    so the run would silently go on with the default. As the first item of an ``initialize`` list, this compares
    the top-level keys of the running config with those of the bundle's ``configs/*.json`` (train, inference,
    evaluate and presets such as ``quick.json``: one set of overrides may serve every workflow).

    Args:
        bundle: the bundle's name; its config files are found by :func:`bundle_root`, whatever ``--bundle_root`` says.

    Raises:
        ValueError: one line naming each unknown key and the closest known one.
        RuntimeError: not called from a config expression.
    """
    folder = Path(bundle_root(bundle)) / "configs"
    files = [p for p in sorted(folder.glob("*.json")) if p.name != "metadata.json"]
    known = {ConfigParser.meta_key}.union(*(ConfigParser.load_config_file(p) for p in files))
    unknown = sorted(set(_running_config()) - known)
    if unknown:
        names = ", ".join(f"{key!r}{_did_you_mean(key, known)}" for key in unknown)
        raise ValueError(f"unknown config key(s) {names}: not defined by any of {folder}/*.json; check the spelling.")


def check_output_dir(input_dir: str | Path, output_dir: str | Path) -> None:
    """Refuse an output folder that is, or lies inside, the input folder (outputs would mix with inputs), or that
    is an existing file."""
    source, target = Path(input_dir).resolve(), Path(output_dir).resolve()
    if target == source or source in target.parents:
        raise ValueError(f"output_dir {output_dir} is inside the input folder {input_dir} (or is the same folder): "
                         "outputs would mix with the inputs; choose another output_dir.")
    if target.exists() and not target.is_dir():
        raise ValueError(f"output_dir {output_dir} is a file, not a folder.")


def check_paths(**paths: str | Path | None) -> None:
    """A clear error, before any work, for each configured path (``key=value``, None: not set) that does not exist."""
    for key, value in paths.items():
        if value is not None and not Path(value).exists():
            raise FileNotFoundError(f"config key {key!r}: {value} does not exist.")


def check_weights(path: str | Path) -> None:
    """A clear error, before any work, when a bundle's trained weights are missing."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no trained weights at {path}: train the bundle first (with the same quick.json or "
                                f"size settings), or pass --ckpt_dir / --load_path.")


def list_images(folder: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[dict[str, str]]:
    """``[{"image": path}]`` for every image file in ``folder`` (sorted); a clear error if there is none.

    Hidden files (such as the temporary files of an interrupted write) are skipped; other entries that are not
    images are skipped with a warning.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist.")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file() and p.name.endswith(suffixes)]
    if len(files) < len(entries):
        ignored = [p.name for p in entries if p not in files]
        logger.warning(f"{folder}: ignored {len(ignored)} entries that are not {' / '.join(suffixes)} files: "
                       + ", ".join(ignored[:5]) + (", ..." if len(ignored) > 5 else ""))
    if not files:
        raise FileNotFoundError(f"input folder {folder} holds no {' / '.join(suffixes)} files.")
    return [{"image": str(p)} for p in files]


def parse_flag(name: str, value: bool | str) -> bool:
    """``value`` of config key ``name`` as a bool: ``True``/``False``, or ``"true"``/``"false"`` in any case (what
    ``python -m monai.bundle run --overwrite true`` passes: a string, which would always count as true)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"config key {name!r} must be true or false, got {value!r}.")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"config key {name!r} must be a positive integer, got {value!r}.")


def _check_sizes(name: str, sizes, count: int) -> None:
    if not isinstance(sizes, (list, tuple)) or len(sizes) != count:
        raise ValueError(f"config key {name!r} must be a list of {count} sizes, got {sizes!r}.")
    for s in sizes:
        _positive_int(name, s)


def validate_settings(directions: Sequence[str] = DIRECTIONS, **settings) -> None:
    """Check a bundle's top-level settings before any work starts; raise ``ValueError`` naming the bad key.

    Known keys: ``method``, ``depth`` (>= 4 for method ``3d``), ``size`` ([height, width], each >= 4),
    ``volume_size`` ([slices, height, width]: depth and size in one), ``channels``, ``ngf``, ``ndf``,
    ``num_res_blocks`` (>= 0), ``gen_strides`` (1 or 2, or one of them per axis), ``d_layers``, ``max_epochs``,
    ``decay_epochs`` (0..max_epochs), ``epoch_length`` (None or positive), ``lr`` (> 0), ``lambda_*`` (>= 0;
    ``lambda_const`` > 0 exactly for ``seq_const``), ``clips_per_batch``, ``frames_per_batch`` (needed by
    ``random``), ``adversarial``, ``pool_size`` (>= 0), ``max_nonfinite_steps`` (None or >= 0), ``direction``
    (one of ``directions``), ``amp_dtype`` (``bfloat16`` or ``float16``), ``sw_batch_size`` (positive),
    ``sw_overlap`` (in [0, 1)), and the flags ``overwrite``, ``resume`` and the performance switches (``amp``,
    ``channels_last``, ``compile``, ``checkpoint_blocks``, ``fused_adam``, ``cudnn_benchmark``; see
    :func:`parse_flag`). Unknown keys are an error too, so a typo in a config is not silently ignored.

    Args:
        directions: the translation directions the bundle offers.
        settings: ``key=value`` of the config's top-level keys.
    """
    positive = {"depth", "channels", "ngf", "ndf", "d_layers", "max_epochs", "clips_per_batch", "sw_batch_size"}
    flags = {"overwrite", "resume", *PERFORMANCE_FLAGS}
    known = positive | flags | {"method", "direction", "size", "volume_size", "num_res_blocks", "gen_strides",
                                "decay_epochs", "epoch_length", "lr", "lambda_cycle", "lambda_identity", "lambda_const",
                                "frames_per_batch", "adversarial", "pool_size", "max_nonfinite_steps", "amp_dtype",
                                "sw_overlap"}
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(known)}.")
    if "direction" in settings and settings["direction"] not in directions:
        raise ValueError(f"config key 'direction' is {settings['direction']!r}; choose one of {', '.join(directions)}.")
    if "method" in settings and settings["method"] not in METHODS:
        raise ValueError(f"config key 'method' is {settings['method']!r}; choose one of {', '.join(METHODS)}.")
    for name in positive & set(settings):
        _positive_int(name, settings[name])
    spatial_dims = 3 if settings.get("method", "3d") == "3d" else 2  # 2D methods see frames: any number of them
    convolved = {}  # the sizes the generator convolves, by key
    if "depth" in settings and spatial_dims == 3:
        convolved["depth"] = [settings["depth"]]
    if "size" in settings:
        _check_sizes("size", settings["size"], 2)
        convolved["size"] = settings["size"]
    if "volume_size" in settings:
        _check_sizes("volume_size", settings["volume_size"], 3)
        convolved["volume_size"] = settings["volume_size"][3 - spatial_dims:]
    for name, sizes in convolved.items():
        if min(sizes) < MIN_SPATIAL_SIZE:
            raise ValueError(f"config key {name!r} is {settings[name]!r}: the generator needs >= {MIN_SPATIAL_SIZE} "
                             f"voxels along each of its {spatial_dims} axes.")
    if "gen_strides" in settings:
        strides = settings["gen_strides"]
        per_axis = strides if isinstance(strides, list) else [strides] * spatial_dims
        if len(per_axis) != spatial_dims or any(isinstance(s, bool) or s not in (1, 2) for s in per_axis):
            raise ValueError(f"config key 'gen_strides' must be 1 or 2, or a list of {spatial_dims} of them (one per "
                             f"axis), got {strides!r}.")
    for name in ("num_res_blocks", "pool_size"):
        if name in settings and (not isinstance(settings[name], int) or settings[name] < 0):
            raise ValueError(f"config key {name!r} must be an integer >= 0, got {settings[name]!r}.")
    if settings.get("max_nonfinite_steps") is not None:
        steps = settings["max_nonfinite_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"config key 'max_nonfinite_steps' must be null or an integer >= 0, got {steps!r}.")
    for name in flags & set(settings):
        parse_flag(name, settings[name])
    if "amp_dtype" in settings and settings["amp_dtype"] not in AMP_DTYPES:
        raise ValueError(f"config key 'amp_dtype' must be {' or '.join(map(repr, AMP_DTYPES))}, "
                         f"got {settings['amp_dtype']!r}.")
    if "sw_overlap" in settings and (isinstance(settings["sw_overlap"], bool)
                                     or not isinstance(settings["sw_overlap"], (int, float))
                                     or not 0 <= settings["sw_overlap"] < 1):
        raise ValueError(f"config key 'sw_overlap' must be a number in [0, 1), got {settings['sw_overlap']!r}.")
    if "decay_epochs" in settings and not 0 <= settings["decay_epochs"] <= settings.get("max_epochs", float("inf")):
        raise ValueError(f"config key 'decay_epochs' must be in [0, max_epochs], got {settings['decay_epochs']!r}.")
    if settings.get("epoch_length") is not None:
        _positive_int("epoch_length", settings["epoch_length"])
    if "lr" in settings and not settings["lr"] > 0:
        raise ValueError(f"config key 'lr' must be > 0, got {settings['lr']!r}.")
    for name in ("lambda_cycle", "lambda_identity", "lambda_const"):
        if name in settings and not settings[name] >= 0:
            raise ValueError(f"config key {name!r} must be >= 0, got {settings[name]!r}.")
    if "method" in settings and "lambda_const" in settings:
        if settings["method"] == "seq_const" and not settings["lambda_const"] > 0:
            raise ValueError("config key 'lambda_const' must be > 0 for method 'seq_const'.")
        if settings["method"] != "seq_const" and settings["lambda_const"] > 0:
            raise ValueError(f"config key 'lambda_const' applies to method 'seq_const' only (method is "
                             f"{settings['method']!r}); set it to 0.")
    if settings.get("method") == "random":
        _positive_int("frames_per_batch", settings.get("frames_per_batch"))
    if "adversarial" in settings and settings["adversarial"] not in ADVERSARIAL_LOSSES:
        raise ValueError(f"config key 'adversarial' is {settings['adversarial']!r}; choose one of {', '.join(ADVERSARIAL_LOSSES)}.")
