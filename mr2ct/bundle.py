"""Helpers that bundle configs call: where the bundle lives, and which files a folder holds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from monai.bundle import ConfigParser

from mr2ct.engine.batching import METHODS
from mr2ct.engine.losses import ADVERSARIAL_LOSSES

__all__ = ["bundle_root", "check_output_dir", "check_weights", "list_images", "shared_transforms", "validate_settings"]

IMAGE_SUFFIXES = (".nii", ".nii.gz")
DIRECTIONS = ("a2b", "b2a", "mr2ct", "ct2mr")


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


def check_output_dir(input_dir: str | Path, output_dir: str | Path) -> None:
    """Refuse an output folder that is, or lies inside, the input folder (outputs would mix with inputs)."""
    source, target = Path(input_dir).resolve(), Path(output_dir).resolve()
    if target == source or source in target.parents:
        raise ValueError(f"output folder {output_dir} is inside the input folder {input_dir}; choose another one.")


def check_weights(path: str | Path) -> None:
    """A clear error, before any work, when a bundle's trained weights are missing."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no trained weights at {path}: train the bundle first (with the same quick.json or "
                                f"size settings), or pass --ckpt_dir / --load_path.")


def list_images(folder: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[dict[str, str]]:
    """``[{"image": path}]`` for every image file in ``folder`` (sorted); a clear error if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffixes))
    if not files:
        raise FileNotFoundError(f"input folder {folder} holds no {' / '.join(suffixes)} files.")
    return [{"image": str(p)} for p in files]


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"config key {name!r} must be a positive integer, got {value!r}.")


def validate_settings(**settings) -> None:
    """Check a bundle's top-level settings before any work starts; raise ``ValueError`` naming the bad key.

    Known keys: ``method``, ``depth``, ``size``, ``channels``, ``ngf``, ``ndf``, ``num_res_blocks`` (>= 0),
    ``d_layers``, ``max_epochs``, ``decay_epochs`` (0..max_epochs), ``epoch_length`` (None or positive),
    ``lr`` (> 0), ``lambda_*`` (>= 0; ``lambda_const`` > 0 exactly for ``seq_const``), ``clips_per_batch``,
    ``frames_per_batch`` (needed by ``random``),
    ``adversarial``, ``direction`` (one of :data:`DIRECTIONS`). Unknown keys are an error too, so a typo in an override is not silently ignored.
    """
    positive = {"depth", "channels", "ngf", "ndf", "d_layers", "max_epochs", "clips_per_batch"}
    known = positive | {"method", "direction", "size", "num_res_blocks", "decay_epochs", "epoch_length", "lr", "lambda_cycle",
                        "lambda_identity", "lambda_const", "frames_per_batch", "adversarial", "pool_size"}
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(known)}.")
    if "direction" in settings and settings["direction"] not in DIRECTIONS:
        raise ValueError(f"config key 'direction' is {settings['direction']!r}; choose one of {', '.join(DIRECTIONS)}.")
    if "method" in settings and settings["method"] not in METHODS:
        raise ValueError(f"config key 'method' is {settings['method']!r}; choose one of {', '.join(METHODS)}.")
    for name in positive & set(settings):
        _positive_int(name, settings[name])
    if "size" in settings:
        size = settings["size"]
        if not isinstance(size, (list, tuple)) or len(size) != 2:
            raise ValueError(f"config key 'size' must be [height, width], got {size!r}.")
        for s in size:
            _positive_int("size", s)
    for name in ("num_res_blocks", "pool_size"):
        if name in settings and (not isinstance(settings[name], int) or settings[name] < 0):
            raise ValueError(f"config key {name!r} must be an integer >= 0, got {settings[name]!r}.")
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
