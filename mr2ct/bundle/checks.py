"""Checks that bundle configs run before any work: output folders, paths, trained weights, input folders."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "check_output_dir", "check_paths", "check_weights", "list_images"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii", ".nii.gz")


def check_output_dir(input_dir: str | Path, output_dir: str | Path) -> None:
    """Refuse an output folder that is, or lies inside, the input folder (outputs would mix with inputs), or that
    is an existing file."""
    source, target = Path(input_dir).resolve(), Path(output_dir).resolve()
    if target == source or source in target.parents:
        raise ValueError(
            f"output_dir {output_dir} is inside the input folder {input_dir} (or is the same folder): "
            "outputs would mix with the inputs; choose another output_dir."
        )
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
        raise FileNotFoundError(
            f"no trained weights at {path}: train the bundle first (with the same quick.json or "
            f"size settings), or pass --ckpt_dir / --load_path."
        )


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
        logger.warning(
            f"{folder}: ignored {len(ignored)} entries that are not {' / '.join(suffixes)} files: "
            + ", ".join(ignored[:5])
            + (", ..." if len(ignored) > 5 else "")
        )
    if not files:
        raise FileNotFoundError(f"input folder {folder} holds no {' / '.join(suffixes)} files.")
    return [{"image": str(p)} for p in files]
