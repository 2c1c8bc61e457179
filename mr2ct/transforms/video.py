"""Loading a video (a video file or a folder of frames) for a network: ``(3, T, H, W)`` on [-1, 1]."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from mr2ct.io.video import fit_frame, read_frame_folder, read_video

__all__ = ["LoadVideod"]


class LoadVideod(MapTransform):
    """Replace the path under each key with its video as a float tensor ``(3, T, H, W)`` on [-1, 1].

    A path is a video file (MP4 and the like) or a folder of numbered image frames. Every frame is centre-cropped
    to the aspect ratio of ``size`` and resized to it with anti-aliasing (as the clip builder does), so that
    videos of any resolution meet the network at its training size. Errors name the file and the frame
    (:class:`~mr2ct.io.video.VideoError`).

    Args:
        keys: keys holding video paths.
        size: ``(H, W)`` of the network's frames; None keeps each video's own size.
        frame_step: keep every ``frame_step``-th frame (the training frame rate).
    """

    def __init__(
        self,
        keys: KeysCollection,
        size: Sequence[int] | None = None,
        frame_step: int = 1,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.size = tuple(size) if size is not None else None
        self.frame_step = frame_step

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            path = Path(str(d[key]))
            read = read_frame_folder if path.is_dir() else read_video
            frames = np.stack([fit_frame(f, self.size) for f in read(path, frame_step=self.frame_step)])
            d[key] = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1  # (3, T, H, W)
        return d
