"""Build a data-set folder atomically: under a temporary name, renamed when complete."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["building_folder", "check_apart", "replacing_folder"]

logger = logging.getLogger(__name__)


@contextmanager
def building_folder(folder: str | Path, marker: str = "meta.json") -> Iterator[Path]:
    """Yield a temporary folder beside ``folder`` to write into; rename it to ``folder`` when the block ends.

    An interrupted or failed build never leaves a partial data set behind (the temporary folder is removed).
    If another process completed the same build first (``folder/marker`` exists), its folder is kept.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same build first
            if not (folder / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(f"built {folder}")


def check_apart(folder: str | Path, inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse an output ``folder`` that is or holds one of ``inputs`` (replacing it would delete that input), or lies
    inside an input folder (outputs would mix with the inputs). Paths are compared with symbolic links resolved.

    Args:
        folder: the output folder (it need not exist).
        inputs: what each input is (e.g. ``"source"``) -> its file or folder; None entries are skipped.

    Raises:
        ValueError: naming the output and the input.
    """
    out = Path(folder).resolve()
    for what, path in inputs.items():
        if path is None:
            continue
        inp = Path(path).resolve()
        if out == inp or out in inp.parents:
            raise ValueError(f"output folder {folder} is or holds the {what} {path}: replacing it would delete that "
                             "input; choose another output folder.")
        if inp.is_dir() and inp in out.parents:
            raise ValueError(f"output folder {folder} lies inside the {what} folder {path}: outputs would mix with "
                             "the inputs; choose a folder outside them.")


@contextmanager
def replacing_folder(folder: str | Path, overwrite: bool = False,
                     inputs: Mapping[str, str | Path | None] | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder`` to write into; it becomes ``folder`` when the block ends.

    An existing non-empty ``folder`` is refused (``FileExistsError``, before any work) unless ``overwrite``; then
    it is moved aside only once the new one is complete, and put back if the final rename fails. A failed build
    leaves ``folder`` as it was. ``inputs`` (what -> path) are what the build reads: a ``folder`` that is, holds
    or lies inside one of them is refused first (``ValueError``, see :func:`check_apart`).
    """
    folder = Path(folder)
    check_apart(folder, inputs or {})
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder.")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite to replace it.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    old = folder.with_name(f"{tmp.name}.old")
    try:
        yield tmp
        if folder.exists():
            os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except OSError:
            if old.exists():
                os.replace(old, folder)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
