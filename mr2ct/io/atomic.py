"""Build a data-set folder atomically: under a temporary name, renamed when complete."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["building_folder", "replacing_folder"]

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


@contextmanager
def replacing_folder(folder: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder`` to write into; it becomes ``folder`` when the block ends.

    An existing non-empty ``folder`` is refused (``FileExistsError``, before any work) unless ``overwrite``; then
    it is moved aside only once the new one is complete, and put back if the final rename fails. A failed build
    leaves ``folder`` as it was.
    """
    folder = Path(folder)
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
