"""Coloured moving MNIST (the paper, section 5.1): white moving digits (A) and the same videos in colour (B).

Each video shows one digit bouncing inside the frame in the style of Srivastava et al. (2015): a random
start position and direction, constant speed, reflection at the borders. Domain A paints it white; domain
B paints it in one of ``num_colours`` colours (evenly spaced hues), constant over the video. Motion and
colour depend only on the seed and the digit's id, so the A and B renderings of a test digit are the same
video in two colourings: a ground-truth pair.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mr2ct.data.digit_videos import DigitVideoConfig, build_digit_videos

__all__ = ["bouncing_trajectory", "build_moving_mnist", "colour_palette", "render_moving_digits"]

_VERSION = 1


def colour_palette(num_colours: int = 20) -> np.ndarray:
    """``(num_colours, 3)`` RGB colours in [0, 1]: evenly spaced hues at full saturation and brightness."""
    if num_colours < 1:
        raise ValueError(f"num_colours must be positive, got {num_colours}.")
    return np.array([colorsys.hsv_to_rgb(k / num_colours, 1.0, 1.0) for k in range(num_colours)])


def bouncing_trajectory(rng: np.random.Generator, depth: int, room: tuple[int, int], speed: float) -> np.ndarray:
    """Top-left corners ``(depth, 2)`` (row, column) of a digit moving at ``speed`` px/frame inside ``room``
    (the free range of each coordinate), reflected at the borders."""
    pos = rng.uniform(0, 1, 2) * np.array(room, dtype=float)
    angle = rng.uniform(0, 2 * np.pi)
    vel = speed * np.array([np.sin(angle), np.cos(angle)])
    out = np.empty((depth, 2))
    for t in range(depth):
        out[t] = pos
        pos = pos + vel
        for a in range(2):
            if pos[a] < 0 or pos[a] > room[a]:
                vel[a] = -vel[a]
                pos[a] = -pos[a] if pos[a] < 0 else 2 * room[a] - pos[a]
                pos[a] = min(max(pos[a], 0.0), room[a])
    return np.rint(out).astype(int)


def render_moving_digits(
    digits: np.ndarray,
    ids: np.ndarray,
    domain: str,
    depth: int,
    size: tuple[int, int],
    digit_size: int,
    speed: float,
    num_colours: int,
    seed: int,
) -> np.ndarray:
    """Render ``(n, 28, 28)`` digits as ``(n, 3, depth, H, W)`` uint8 videos; ``domain`` "A" white, "B" coloured."""
    if digit_size > min(size):
        raise ValueError(f"digit_size {digit_size} does not fit in frames of size {tuple(size)}.")
    small = F.interpolate(torch.as_tensor(digits)[:, None].float(), size=(digit_size, digit_size), mode="area")[
        :, 0
    ].numpy()
    palette = colour_palette(num_colours)
    room = (size[0] - digit_size, size[1] - digit_size)
    videos = np.zeros((len(digits), 3, depth, *size), dtype=np.uint8)
    for n, (digit, video_id) in enumerate(zip(small, ids)):
        rng = np.random.default_rng([seed, int(video_id)])
        path = bouncing_trajectory(rng, depth, room, speed)
        colour = palette[rng.integers(num_colours)] if domain == "B" else np.ones(3)
        painted = (colour[:, None, None] * digit[None]).round().astype(np.uint8)  # (3, s, s)
        for t, (r, c) in enumerate(path):
            frame = videos[n, :, t, r : r + digit_size, c : c + digit_size]
            np.maximum(frame, painted, out=frame)
    return videos


def build_moving_mnist(
    root_dir: str | Path,
    config: DigitVideoConfig | None = None,
    digit_size: int = 28,
    speed: float = 3.0,
    num_colours: int = 20,
) -> Path:
    """Build (once) and cache coloured moving MNIST under ``root_dir``; return its folder.

    Arrays are ``(N, 3, D, H, W)`` uint8; domain A white, domain B coloured (see
    :func:`~mr2ct.data.digit_videos.build_digit_videos` for the splits). ``speed`` is in pixels per frame.
    """
    config = config or DigitVideoConfig()
    if digit_size < 1 or speed < 0 or num_colours < 1:
        raise ValueError("digit_size and num_colours must be positive and speed >= 0.")

    def render(digits: np.ndarray, ids: np.ndarray, domain: str) -> np.ndarray:
        return render_moving_digits(
            digits, ids, domain, config.depth, config.size, digit_size, speed, num_colours, config.seed
        )

    name = config.folder_name(f"mmnist_v{_VERSION}_s{digit_size}_v{speed:g}_c{num_colours}")
    meta = {
        "digit_size": digit_size,
        "speed": speed,
        "num_colours": num_colours,
        "domains": {"A": "white", "B": "colour"},
    }
    return build_digit_videos(root_dir, config, name, channels=3, render=render, meta=meta)
