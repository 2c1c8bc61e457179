"""Layered bundle configs: every bundle's configs hold only their task (data, sizes, metrics); what all bundles share
(networks, optimizers, schedules, trainer, handlers, performance switches, multi-GPU parts) lives once in
``bundles/common/configs/``.

A bundle's ``<workflow>.json`` (``train``, ``evaluate`` or ``inference``) is layered, most specific first, on

1. the bundle's own ``train.json`` (for ``evaluate`` and ``inference``: they are overrides on training),
2. ``bundles/common/configs/<layer>/<workflow>.json`` for each family layer the bundle's ``layers`` key names
   (``clips``: bundles whose data are folders of clips), then ``bundles/common/configs/<workflow>.json``,
3. the same folders' ``train.json`` (for ``evaluate`` and ``inference``).

Layering fills in what the running config does not set, at any depth (:func:`fill_absent`); so the files and
``--key value`` overrides a user gives always win, in MONAI's own order, and a bundle runs standalone::

    python -m monai.bundle run training --config_file bundles/mrct_cyclegan3d/configs/train.json
    B=bundles/vmnist_cyclegan3d/configs
    python -m monai.bundle run evaluating --config_file "['$B/train.json','$B/quick.json','$B/evaluate.json']"

MONAI reads only the files it is given, so the layers are added by the first ``initialize`` step of every
bundle config, :func:`complete`, before anything is built. In Python, :func:`load_config` returns the same
complete config as a ``ConfigParser``.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from mr2ct.bundle.errors import concise_errors
from mr2ct.bundle.settings import settings_class

__all__ = [
    "BUNDLES_DIR",
    "WORKFLOWS",
    "bundle_root",
    "check_config_keys",
    "complete",
    "config_value",
    "fill_absent",
    "layer_files",
    "load_config",
    "shared_transforms",
]

REPOSITORY = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPOSITORY / "bundles"
COMMON = "common"
WORKFLOWS = ("train", "evaluate", "inference")
# names other tools use for our keys, for the "did you mean" of check_config_keys
_KEY_ALIASES = {"learning_rate": "lr", "epochs": "max_epochs", "batch_size": "clips_per_batch"}


def bundle_root(name: str) -> str:
    """Folder of the repository's bundle ``name`` (``bundles/<name>`` beside this package), whatever the current
    directory holds; configs use it as the default ``bundle_root``, and ``--bundle_root`` overrides it."""
    path = BUNDLES_DIR / name
    if not (path / "configs" / "metadata.json").is_file():
        known = sorted(p.parent.parent.name for p in BUNDLES_DIR.glob("*/configs/metadata.json"))
        raise FileNotFoundError(f"no bundle {name!r} in {BUNDLES_DIR}; known: {', '.join(known)}.")
    return str(path)


def shared_transforms(file: str, chains: Sequence[str], **params) -> list:
    """Instantiate named transform chains of a shared config file of the repository's ``transforms/`` folder.

    The file holds parameters (``keys``, windows, sizes...) and lists of transform configs under chain names;
    ``params`` override the parameters. Example: ``shared_transforms("mrct.json", ["load", "ct_intensity"],
    keys=["B"])`` returns the transforms of both chains, in order, ready for a ``Compose``. ``file`` is looked up
    in the repository's ``transforms/`` (never the current directory's), unless it is a path to a file.
    """
    path = Path(file) if Path(file).name != file else REPOSITORY / "transforms" / file
    if not path.is_file():
        raise FileNotFoundError(f"shared transform config {file!r} not found ({path}).")
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


def layer_files(bundle: str, workflow: str, layers: Sequence[str] = ()) -> list[Path]:
    """The config files that a bundle's ``<workflow>.json`` is layered on, the most specific first (itself first).

    ``layers`` names shared layers of a family of bundles (``bundles/common/configs/<layer>/``, e.g. ``clips`` for
    the bundles whose data are folders of clips), which come before the layers every bundle shares.
    """
    if workflow not in WORKFLOWS:
        raise ValueError(f"workflow must be one of {', '.join(WORKFLOWS)}, got {workflow!r}.")
    common = BUNDLES_DIR / COMMON / "configs"
    folders = [Path(bundle_root(bundle)) / "configs", *(common / layer for layer in layers), common]
    names = [f"{workflow}.json"] if workflow == "train" else [f"{workflow}.json", "train.json"]
    files = [folder / name for folder in folders for name in (names if folder == folders[0] else names[:1])]
    files += [folder / name for folder in folders[1:] for name in names[1:]]
    missing = [layer for layer in layers if not (common / layer).is_dir()]
    if missing:
        raise FileNotFoundError(f"bundle {bundle!r} names shared layer(s) {missing} that {common} does not hold.")
    return [f for f in files if f.is_file()]


def fill_absent(config: dict, layer: Mapping) -> dict:
    """Fill ``config`` in place with what ``layer`` has and ``config`` does not set, at any depth; returns it.

    Dicts are filled key by key unless they are components of different ``_target_`` (then ``config``'s
    replaces ``layer``'s); lists and values in ``config`` replace ``layer``'s, except ``imports``, which
    collects the import statements of every layer.
    """
    for key, value in layer.items():
        if key not in config:
            config[key] = copy.deepcopy(value)
        elif key == "imports" and isinstance(value, list) and isinstance(config[key], list):
            config[key] += [v for v in value if v not in config[key]]
        elif (
            isinstance(value, Mapping)
            and isinstance(config[key], dict)
            and config[key].get("_target_", value.get("_target_")) == value.get("_target_")
        ):
            fill_absent(config[key], value)
    return config


def _add_layers(config: dict, bundle: str, workflow: str) -> None:
    """Fill ``config`` from the layers of the bundle's workflow (the family layers named by the bundle's
    ``train.json``, or by the running config, under ``layers``)."""
    own_train = ConfigParser.load_config_file(Path(bundle_root(bundle)) / "configs" / "train.json")
    for path in layer_files(bundle, workflow, config.get("layers", own_train.get("layers", ()))):
        fill_absent(config, ConfigParser.load_config_file(path))


def _running_parser() -> ConfigParser:
    """The ``ConfigParser`` evaluating the calling expression, found up the call stack (MONAI gives an expression
    no handle on its parser)."""
    frame = inspect.currentframe()
    while frame is not None:
        parser = frame.f_locals.get("self")
        if isinstance(parser, ConfigParser):
            return parser
        frame = frame.f_back
    raise RuntimeError("this must run inside a bundle config expression, e.g. the first item of its 'initialize'.")


def config_value(key: str) -> Any:
    """The running config's ``key``, resolved only when the calling expression runs: for what only one branch of
    an expression needs (``@key`` would be resolved, e.g. a data set built, whichever branch runs)."""
    return _running_parser().get_parsed_content(key)


def _known_keys(bundle: str) -> set[str]:
    folders = (Path(bundle_root(bundle)) / "configs", BUNDLES_DIR / COMMON / "configs")
    files = [p for folder in folders for p in sorted(folder.rglob("*.json")) if p.name != "metadata.json"]
    return {ConfigParser.meta_key}.union(*(ConfigParser.load_config_file(p) for p in files))


def _did_you_mean(key: str, known: set[str]) -> str:
    """`` (did you mean 'lr'?)`` for the known key closest to ``key``; empty if none is close."""
    match = _KEY_ALIASES.get(key) or next(iter(difflib.get_close_matches(key, known, n=1)), None)
    return f" (did you mean {match!r}?)" if match else ""


def check_config_keys(bundle: str, config: Mapping | None = None) -> None:
    """Refuse top-level keys of ``config`` (default: the running config) that no config file of the bundle nor of
    ``bundles/common`` defines: a mistyped override.

    ``--max_epoch 3`` on the command line (or ``ConfigWorkflow(..., max_epoch=3)``) adds a key that nothing reads,
    so the run would silently go on with the default. One set of overrides may serve every workflow (like
    ``quick.json``), so a key of any of the bundle's configs is known.

    Raises:
        ValueError: one line naming each unknown key and the closest known one.
        RuntimeError: no ``config`` and not called from a config expression.
    """
    config = _running_parser().get() if config is None else config
    known = _known_keys(bundle)
    unknown = sorted(set(config) - known)
    if unknown:
        names = ", ".join(f"{key!r}{_did_you_mean(key, known)}" for key in unknown)
        raise ValueError(
            f"unknown config key(s) {names}: not defined by any of "
            f"{Path(bundle_root(bundle)) / 'configs'}/*.json; check the spelling."
        )


def _check_settings(parser: ConfigParser, bundle: str) -> dict[str, Any]:
    """The bundle's settings (the top-level keys its settings class describes), checked one by one in the class's
    order (so a bad ``method`` is named before anything derived from it is evaluated); returns the values that
    the check normalised (flags given as ``"true"``/``"false"`` text)."""
    cls = settings_class(bundle)
    present = [name for name in cls.names() if name in parser.get()]
    values = {}
    for name in present:
        values[name] = cls.check_value(name, parser.get_parsed_content(name))
    cls.check_together(values)
    raw = parser.get()
    return {name: value for name, value in values.items() if isinstance(value, bool) and raw[name] is not value}


def complete(bundle: str, workflow: str) -> None:
    """The first ``initialize`` step of every bundle config: report input errors in one line
    (:func:`~mr2ct.bundle.errors.concise_errors`), refuse unknown keys, add the layers (:func:`layer_files`) to the
    running config, and check and normalise its settings, before any work.

    Args:
        bundle: the bundle's name (``bundles/<bundle>``).
        workflow: ``train``, ``evaluate`` or ``inference``: which of the bundle's configs is running.
    """
    concise_errors()
    parser = _running_parser()
    config = parser.get()
    check_config_keys(bundle, config)
    _add_layers(config, bundle, workflow)
    parser.parse()
    config.update(_check_settings(parser, bundle))
    parser.parse()


def load_config(
    bundle: str, workflow: str = "train", files: Sequence[str | Path] = (), overrides: Mapping[str, Any] | None = None
) -> ConfigParser:
    """The complete config of a bundle's workflow as a ``ConfigParser``, for use from Python.

    Reads ``<bundle>/configs/<workflow>.json`` and then ``files`` (e.g. the bundle's ``quick.json``), as
    ``python -m monai.bundle run`` would, adds the layers, and applies ``overrides`` (``{"ngf": 8,
    "train#trainer#max_epochs": 1}``: nested keys work, the layers being in place). The settings checks run
    when the workflow's ``initialize`` runs.
    """
    own = Path(bundle_root(bundle)) / "configs" / f"{workflow}.json"
    config = ConfigParser.load_config_files([own, *map(Path, files)])
    _add_layers(config, bundle, workflow)
    parser = ConfigParser(config)
    parser.update(dict(overrides or {}))
    return parser
