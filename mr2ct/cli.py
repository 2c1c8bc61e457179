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

Anything after the bundle name that is not ``--quick`` is passed on as a config override (``--key value``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mr2ct import __version__
from mr2ct.bundle import bundle_root

__all__ = ["main", "parse_overrides"]

_COMMANDS = {"train": ("training", "train.json"), "evaluate": ("evaluating", "evaluate.json"),
             "infer": ("inference", "inference.json")}


def parse_overrides(extra: list[str]) -> dict[str, object]:
    """``["--key", "value", "--flag", ...]`` as ``{"key": value, "flag": True}`` (values as Python literals when
    they parse as one, else text); a clear error for anything else."""
    overrides: dict[str, object] = {}
    i = 0
    while i < len(extra):
        key = extra[i]
        if not key.startswith("--") or len(key) == 2:
            raise SystemExit(f"mr2ct: expected --key [value], got {key!r}")
        if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            overrides[key[2:]] = _literal(extra[i + 1])
            i += 2
        else:
            overrides[key[2:]] = True
            i += 1
    return overrides


def _literal(text: str) -> object:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mr2ct`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "reproduce":
        from mr2ct.reproduce import main as reproduce

        return reproduce(argv[1:])
    if argv and argv[0] == "bench":
        from mr2ct.benchmarks import main as bench

        return bench(argv[1:])
    if argv and argv[0] == "prepare":
        from mr2ct.data.prepare_mrct import main as prepare

        return prepare(argv[1:])
    if argv and argv[0] == "export-dicom":
        from mr2ct.export.dicom import main as export_dicom

        return export_dicom(argv[1:])
    if argv and argv[0] == "review":
        if argv[1:2] == ["sheets"]:
            from mr2ct.export.sheets import main as sheets

            return sheets(argv[2:])
        from mr2ct.export.reader_study import main as review

        return review(argv[1:])
    if argv and argv[0] == "translate":
        argv = ["infer", "mrct_cyclegan3d", *argv[1:]]
    parser = argparse.ArgumentParser(prog="mr2ct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"mr2ct {__version__}")
    parser.add_argument("command", choices=sorted(_COMMANDS))
    parser.add_argument("bundle", help="bundle name under bundles/, e.g. vmnist_cyclegan3d")
    parser.add_argument("--quick", action="store_true", help="add the bundle's quick.json (small, CPU-sized run)")
    args, extra = parser.parse_known_args(argv)

    from monai.bundle import run

    root = Path(bundle_root(args.bundle))
    run_id, config = _COMMANDS[args.command]
    configs = [str(root / "configs" / config)] + ([str(root / "configs" / "quick.json")] if args.quick else [])
    overrides = {"bundle_root": str(root), **parse_overrides(extra)}
    run(run_id=run_id, config_file=configs, logging_file=str(root / "configs" / "logging.conf"), **overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
