"""``mr2ct`` command line: a thin shortcut to ``python -m monai.bundle run`` for the bundles of this repository.

Examples::

    mr2ct train vmnist_cyclegan3d --quick
    mr2ct train vmnist_cyclegan3d --quick --resume
    mr2ct evaluate vmnist_cyclegan3d --quick
    mr2ct infer vmnist_cyclegan3d --quick --input_dir IN --output_dir OUT
    mr2ct translate --input_dir IN --output_dir OUT --direction mr2ct   # = infer mrct_cyclegan3d
    mr2ct prepare --mr RAW_MR --ct RAW_CT --output DATA  # raw DICOM/NIfTI -> training layout, see prepare_mrct
    mr2ct export-dicom SYNTHCT_DIR --output DICOM_DIR --source-dicom MR_DICOM_DIR   # PACS-ready series
    mr2ct review sheets --source MR --translation SYNTHCT --truth CT --output SHEETS   # PNG montages + index.html
    mr2ct review make --source MR --method 3D=OUT_3D --method random=OUT_2D --real CT --examples-target CT_TRAIN \
        --output STUDY
    mr2ct review serve STUDY        # the study page on 127.0.0.1, answers saved in STUDY/answers
    mr2ct review score STUDY        # the paper's Table 3 from readers' answers
    mr2ct reproduce --task vmnist --preset quick      # the paper's comparison, see mr2ct.reproduce
    mr2ct bench --shapes quick paper --opt amp,channels_last,fused_adam   # training step vs the fp32 reference
    mr2ct bench inference --volume 120 256 256 --sw-batch-size 4 --opt amp   # whole-volume inference likewise
    mr2ct bench data mrct_cyclegan3d --batches 20    # the training data loader's batches per second
    mr2ct bench curves --output docs/cost_curves     # step / inference cost against volume size and ngf

Anything after the bundle name that is not ``--quick`` is passed on as a config override (``--key value``). The
other commands have command lines of their own (``mr2ct prepare --help``); their arguments are passed on as given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from mr2ct import __version__
from mr2ct.bundle import bundle_root
from mr2ct.overrides import parse_overrides

__all__ = ["main"]

_BUNDLE_RUNS = {
    "train": ("training", "train.json", "train a bundle"),
    "evaluate": ("evaluating", "evaluate.json", "evaluate a bundle's model on its held-out data"),
    "infer": ("inference", "inference.json", "translate a folder with a bundle's model"),
}
# commands with a command line of their own: name -> (module whose main() runs it, help)
_DELEGATED = {
    "prepare": ("mr2ct.data.prepare_mrct", "raw DICOM/NIfTI MR and CT -> the training layout"),
    "export-dicom": ("mr2ct.export.dicom", "translated volumes -> DICOM series"),
    "reproduce": ("mr2ct.reproduce", "the paper's comparison of methods"),
    "bench": (
        "mr2ct.benchmarks",
        "benchmarks against the fp32 reference ([inference|data|curves] ARGS, --peer ganslate)",
    ),
}
_REVIEW = {
    "sheets": ("mr2ct.export.sheets", "review sheets (PNG or GIF per case) and an index.html"),
    "make": ("mr2ct.export.reader_study", "make a blinded reader study"),
    "serve": ("mr2ct.export.reader_study", "serve a study's page on 127.0.0.1"),
    "score": ("mr2ct.export.reader_study", "the 2AFC preference table from readers' answers"),
}

Handler = Callable[[argparse.Namespace, list[str]], int]


def _run_bundle(args: argparse.Namespace, extra: list[str]) -> int:
    """``python -m monai.bundle run`` of a bundle's config (plus quick.json), with ``extra`` as overrides."""
    from monai.bundle import run  # noqa: PLC0415 - MONAI's bundle machinery only for the commands that run one

    root = Path(bundle_root(args.bundle))
    run_id, config, _ = _BUNDLE_RUNS[args.run]
    configs = [str(root / "configs" / config)] + ([str(root / "configs" / "quick.json")] if args.quick else [])
    overrides: dict[str, Any] = {"bundle_root": str(root), **parse_overrides(extra)}
    run(run_id=run_id, config_file=configs, logging_file=str(root / "configs" / "logging.conf"), **overrides)
    return 0


def _delegate(module: str, *leading: str) -> Handler:
    """A handler calling ``module.main([*leading, *extra])`` (imported when the command runs)."""
    return lambda args, extra: import_module(module).main([*leading, *extra])


def _add_bundle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="add the bundle's quick.json (small, CPU-sized run)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mr2ct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"mr2ct {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, (_, _, help_text) in _BUNDLE_RUNS.items():
        sub = commands.add_parser(name, help=help_text, description=f"{help_text}; --key value overrides its config")
        sub.add_argument("bundle", help="bundle name under bundles/, e.g. vmnist_cyclegan3d")
        _add_bundle_arguments(sub)
        sub.set_defaults(handler=_run_bundle, run=name)
    sub = commands.add_parser("translate", help="= infer mrct_cyclegan3d", description="infer mrct_cyclegan3d")
    _add_bundle_arguments(sub)
    sub.set_defaults(handler=_run_bundle, run="infer", bundle="mrct_cyclegan3d")
    for name, (module, help_text) in _DELEGATED.items():
        commands.add_parser(name, help=help_text, add_help=False).set_defaults(handler=_delegate(module))
    review = commands.add_parser(
        "review",
        help="review sheets and blinded reader studies",
        description="review sheets and blinded reader studies",
    )
    actions = review.add_subparsers(dest="action", metavar="action", required=True)
    for name, (module, help_text) in _REVIEW.items():
        handler = _delegate(module) if name == "sheets" else _delegate(module, name)
        actions.add_parser(name, help=help_text, add_help=False).set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mr2ct`` console script."""
    args, extra = _parser().parse_known_args(sys.argv[1:] if argv is None else list(argv))
    return args.handler(args, extra)


if __name__ == "__main__":
    sys.exit(main())
