"""Atomic writes: a file or a folder is written under a temporary name beside it and renamed when complete.

A reader, or a run killed at any moment, sees the old file or folder or the new one, never a partial one; a write
that fails leaves the old one as it was and removes its temporary file. Temporary names are hidden
(``.<name>.<random>...``), so listings that skip hidden entries never see them. Every writer of the package
goes through here: :func:`atomic_file` (and :func:`atomic_write_text`) for files, :func:`building_folder` and
:func:`replacing_folder` for folders.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_file", "atomic_write_text", "building_folder", "check_apart", "replacing_folder"]

logger = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    """Flush a file's data (POSIX), or a folder's entries (a rename in it; Windows cannot open folders)."""
    if path.is_dir() and os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _format_suffix(path: Path) -> str:
    """The suffix a writer may choose the format by: ``.png``, or two for a compressed one (``.nii.gz``)."""
    return "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix


@contextmanager
def atomic_file(path: str | os.PathLike, *, suffix: str | None = None, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; it replaces ``path`` when the block ends without error.

    On any exception (``KeyboardInterrupt`` included) the temporary file is removed and ``path`` is left as it was.
    The new file gets the permissions of a plain ``open(path, "w")``. Example::

        with atomic_file(out / "image.nii.gz") as tmp:
            nib.save(image, tmp)

    Args:
        path: the file to write; its folder is created if need be.
        suffix: the end of the temporary name ``.<name>.<random><suffix>``; default ``.part`` then ``path``'s
            format suffix (``.part.nii.gz`` for ``x.nii.gz``), so that writers that choose the format by the
            name (nibabel, matplotlib) write the right one.
        durable: flush the data and the rename to disk, so that ``path`` is the old or the new file after a
            power loss too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".part{_format_suffix(path)}" if suffix is None else suffix
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_file`; return the path."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


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
            raise ValueError(
                f"output folder {folder} is or holds the {what} {path}: replacing it would delete that "
                "input; choose another output folder."
            )
        if inp.is_dir() and inp in out.parents:
            raise ValueError(
                f"output folder {folder} lies inside the {what} folder {path}: outputs would mix with "
                "the inputs; choose a folder outside them."
            )


@contextmanager
def replacing_folder(
    folder: str | Path, overwrite: bool = False, inputs: Mapping[str, str | Path | None] | None = None
) -> Iterator[Path]:
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
