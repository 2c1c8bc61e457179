"""Reading and writing videos: ordinary video files (MP4 and the like, via PyAV) and folders of image frames.

Every reader returns RGB frames ``(H, W, 3)`` uint8 (a whole video ``(T, H, W, 3)``) and turns whatever goes
wrong into a :class:`VideoError` that names the file and, where it applies, the frame: a missing file, a file
that is not a video, a corrupt or truncated stream, a frame that cannot be decoded, frames of different sizes,
a video with no frames. Frame indices count from 0 in the order of the video (or of the folder, sorted
naturally: ``f_2.png`` before ``f_10.png``), before any ``frame_step`` is applied.

:func:`write_video` writes H.264 MP4 (``yuv420p``, the format every player reads) under a temporary name and
renames it when complete, so an interrupted write never leaves a partial video behind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mr2ct.io.atomic import atomic_file
from mr2ct.io.volume_size import ENV_MAX_VOLUME_BYTES, max_volume_bytes

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoError",
    "fit_frame",
    "iter_frames",
    "iter_video",
    "list_frames",
    "list_videos",
    "read_frame",
    "read_frame_folder",
    "read_video",
    "write_video",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")


class VideoError(ValueError):
    """A video or frame that cannot be used: ``str(err)`` is ``"<path>: frame <i>: <reason>"`` (no frame part
    when the problem is not one frame's).

    Args:
        path: the video file, frame file or frame folder.
        reason: what is wrong, in plain words.
        frame: index of the offending frame, if one.
    """

    def __init__(self, path: str | os.PathLike, reason: str, frame: int | None = None):
        self.path, self.reason, self.frame = str(path), reason, frame
        where = f"{self.path}: frame {frame}" if frame is not None else self.path
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep the fields through pickling, e.g. out of a DataLoader worker
        return type(self), (self.path, self.reason, self.frame)


def _natural_key(path: Path) -> list:
    """Sort key that orders the digit runs of a name by value: ``f_2`` before ``f_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_frames(folder: str | os.PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """The image files of ``folder`` (by suffix, case-insensitive), in natural order; raise if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoError(folder, "no such folder of frames" if not folder.exists() else "is not a folder")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes), key=_natural_key)
    if not files:
        raise VideoError(folder, f"holds zero frames (no {', '.join(suffixes)} files)")
    return files


def read_frame(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """Read one image file as RGB ``(H, W, 3)`` uint8 (palette, grey, 16-bit and alpha images are converted).

    ``frame`` (its index in a video) only goes into the error message.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such file", frame)
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise VideoError(path, f"cannot decode the frame ({e})", frame) from e


def _check_size(frame: np.ndarray, first: np.ndarray, path: Path, index: int) -> None:
    if frame.shape != first.shape:
        raise VideoError(
            path,
            f"frame is {frame.shape[0]}x{frame.shape[1]} but frame 0 is "
            f"{first.shape[0]}x{first.shape[1]} (frames of different sizes)",
            index,
        )


def iter_frames(files: Sequence[str | os.PathLike], frame_step: int = 1) -> Iterator[np.ndarray]:
    """Yield every ``frame_step``-th of ``files`` (a video's frames, in order) as RGB; all must have one size.

    Only the yielded frames are decoded; the size check compares them with the first.
    """
    first = None
    for index in range(0, len(files), _positive(frame_step)):
        frame = read_frame(files[index], index)
        first = frame if first is None else first
        _check_size(frame, first, Path(files[index]), index)
        yield frame


def read_frame_folder(folder: str | os.PathLike, frame_step: int = 1, max_bytes: int | None = None) -> np.ndarray:
    """Read a folder of numbered image frames (PNG, JPEG, ...; natural sort) as ``(T, H, W, 3)`` uint8, refusing
    more than ``max_bytes`` of frames (default :func:`~mr2ct.io.volume_size.max_volume_bytes`)."""
    return _stack(iter_frames(list_frames(folder), frame_step), folder, max_bytes)


def _stack(frames: Iterable[np.ndarray], path: str | os.PathLike, max_bytes: int | None) -> np.ndarray:
    """The frames as one array; :class:`VideoError` as soon as they add up to more than the limit."""
    limit = max_volume_bytes() if max_bytes is None else max_bytes
    kept: list[np.ndarray] = []
    total = 0
    for frame in frames:
        total += frame.nbytes
        if total > limit:
            raise VideoError(
                path,
                f"decodes to more than {limit} bytes of frames, the limit (set "
                f"{ENV_MAX_VOLUME_BYTES} to read longer or larger videos)",
                len(kept),
            )
        kept.append(frame)
    return np.stack(kept)


def _positive(frame_step: int) -> int:
    if int(frame_step) != frame_step or frame_step < 1:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}.")
    return int(frame_step)


def iter_video(path: str | os.PathLike, frame_step: int = 1) -> Iterator[np.ndarray]:
    """Yield every ``frame_step``-th frame of a video file as RGB ``(H, W, 3)`` uint8.

    All frames are decoded (a stream cannot skip frames), checked for one size, and the total is compared with
    the frame count in the container's header when it has one, so a truncated file is reported, not cut short.
    """
    path, frame_step = Path(path), _positive(frame_step)
    if not path.is_file():
        raise VideoError(path, "no such file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise VideoError(path, f"not a readable video ({e})") from e
    with container:
        if not container.streams.video:
            raise VideoError(path, "holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        expected, index, first = stream.frames, 0, None
        try:
            for decoded in container.decode(stream):
                frame = decoded.to_ndarray(format="rgb24")
                first = frame if first is None else first
                _check_size(frame, first, path, index)
                if index % frame_step == 0:
                    yield frame
                index += 1
        except av.FFmpegError as e:
            raise VideoError(
                path, f"corrupt or truncated stream, decoding stopped after {index} frames ({e})", index
            ) from e
    if index == 0:
        raise VideoError(path, "holds zero frames")
    if expected and index < expected:
        raise VideoError(path, f"truncated: its header lists {expected} frames but only {index} decode", index)


def read_video(path: str | os.PathLike, frame_step: int = 1, max_bytes: int | None = None) -> np.ndarray:
    """Read a video file (MP4, AVI, MOV, MKV, ...) as ``(T, H, W, 3)`` uint8 RGB; see :func:`iter_video`. A video
    that decodes to more than ``max_bytes`` (default :func:`~mr2ct.io.volume_size.max_volume_bytes`) is refused
    when it gets there, not after: a small file can decode to many GB."""
    return _stack(iter_video(path, frame_step), path, max_bytes)


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by repeating the last row/column (``yuv420p`` needs even sizes)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)


def _encode(container, frames: Iterable[np.ndarray], fps: float, crf: int) -> None:
    """Encode RGB frames into ``container`` as one H.264 stream; raise if there are none or sizes differ."""
    stream: Any = None  # av's stream, added at frame 0
    first = None
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame {index} must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}.")
        if first is None:
            first = frame.shape
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = _even(frame).shape[1], _even(frame).shape[0]
            stream.pix_fmt, stream.options = "yuv420p", {"crf": str(int(crf))}
        elif frame.shape != first:
            raise ValueError(f"frame {index} is {frame.shape} but frame 0 is {first}: frames of different sizes.")
        picture = av.VideoFrame.from_ndarray(_even(frame), format="rgb24")
        container.mux(stream.encode(picture.reformat(format="yuv420p")))
    if stream is None:
        raise ValueError("zero frames to write.")
    container.mux(stream.encode())


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 15.0, crf: int = 18) -> Path:
    """Write RGB frames (``(T, H, W, 3)`` uint8, or any iterable of ``(H, W, 3)`` frames, encoded as they come)
    as an H.264 MP4 (``yuv420p``, moov atom first, for streaming); return the path.

    Odd heights or widths are padded to even by repeating the last row or column (so reading it back gives
    the padded size). ``crf`` is x264's quality (0 best, 18 visually lossless, 23 its default). The file is
    written under a temporary name beside ``path`` and renamed when complete.
    """
    path = Path(path)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    with atomic_file(path) as tmp, av.open(tmp, mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        try:
            _encode(out, frames, fps, crf)
        except ValueError as e:
            raise ValueError(f"cannot write {path}: {e}") from e
    return path


def list_videos(folder: str | os.PathLike) -> list[Path]:
    """The videos of ``folder``, sorted: video files (:data:`VIDEO_SUFFIXES`) and sub-folders of image frames.

    Hidden entries are skipped; other files are ignored. Raises ``FileNotFoundError`` for a missing folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of videos")
    found = []
    for path in sorted(folder.iterdir(), key=_natural_key):
        if path.name.startswith("."):
            continue
        if (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES) or (path.is_dir() and list_frames(path)):
            found.append(path)
    return found


def fit_frame(frame: np.ndarray, size: Sequence[int] | None, nearest: bool = False) -> np.ndarray:
    """Centre-crop ``frame`` (H, W[, C]) to the aspect ratio of ``size`` and resize it: anti-aliased bilinear,
    or nearest neighbour (class ids). ``size=None`` leaves it as it is."""
    if size is None:
        return frame
    h, w = frame.shape[:2]
    if round(h * size[1] / size[0]) > w:  # too tall: crop rows
        ch, cw = round(w * size[0] / size[1]), w
    else:
        ch, cw = h, round(h * size[1] / size[0])
    top, left = (h - ch) // 2, (w - cw) // 2
    frame = frame[top : top + ch, left : left + cw]
    if (ch, cw) == tuple(size):
        return np.ascontiguousarray(frame)
    if nearest:
        rows = ((np.arange(size[0]) + 0.5) * ch / size[0]).astype(int)
        cols = ((np.arange(size[1]) + 0.5) * cw / size[1]).astype(int)
        return frame[rows[:, None], cols[None, :]]
    x = torch.tensor(frame, dtype=torch.float32).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
