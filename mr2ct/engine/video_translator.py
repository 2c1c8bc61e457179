"""Batch translation of whole videos: one MP4 per input video, and the input beside its translation.

A video longer than the network's clips is translated by sliding a window of ``depth`` frames along time with
overlapping, blended windows (the config's ``SlidingWindowInferer`` with ``roi_size=(depth, H, W)`` and
``mode="gaussian"``), so there are no seams at clip borders. Everything else (failures reported per video,
``summary.csv``, no overwriting without ``overwrite``, atomic writes) is :class:`VolumeTranslator`'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mr2ct.engine.volume_translator import VolumeTranslator
from mr2ct.export.render import video_sheet
from mr2ct.io.video import write_video

__all__ = ["VideoTranslator"]


def _frames(video: torch.Tensor) -> np.ndarray:
    """``(3, T, H, W)`` on [-1, 1] -> ``(T, H, W, 3)`` uint8."""
    return ((video.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()


class VideoTranslator(VolumeTranslator):
    """Translate every video a loader yields; write ``<output_dir>/<name><postfix>.mp4`` for each, and beside
    it ``<name>_side_by_side.mp4`` (input | translation) and, with ``gif_frames``, a GIF of the first frames.

    Args:
        fps: frame rate of the written videos.
        gif_frames: also write ``<name>_side_by_side.gif`` of the first ``gif_frames`` frames (0: no GIF).
        **kwargs: as :class:`VolumeTranslator` (``device``, ``val_data_loader`` of ``{"image": (1, 3, T, H, W)
            on [-1, 1], "source"}``, ``network``, ``output_dir``, ``postfix``, ``inferer``, ``overwrite``...).
    """

    noun = "video"

    def __init__(self, *args, fps: float = 15.0, gif_frames: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.fps = fps
        self.gif_frames = gif_frames

    def output_path(self, source: str) -> Path:
        """Where the translation of ``source`` (a video file or a frame folder) is written."""
        path = Path(source)
        return self.output_dir / f"{path.name if path.is_dir() else path.stem}{self.postfix}.mp4"

    def _save(self, item: dict, path: Path) -> None:
        source, pred = _frames(item["image"]), _frames(item["pred"])
        side = path.with_name(path.name.replace(f"{self.postfix}.mp4", "_side_by_side.mp4"))
        write_video(side, np.concatenate([source, pred], axis=2), fps=self.fps)
        if self.gif_frames:
            n = self.gif_frames
            clips = {"input": item["image"][:, :n], "translation": item["pred"][:, :n]}
            video_sheet(side.with_suffix(".gif"), clips, fps=self.fps, value_range=(-1.0, 1.0))
        write_video(path, pred, fps=self.fps)  # last: its presence means the video is done
