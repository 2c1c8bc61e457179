"""Small Ignite handlers that MONAI does not provide: loss CSV log, sample grids, a progress bar with losses."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar

from mr2ct.engine.trainer import loss_values
from mr2ct.export.panels import save_frame_panel, save_side_by_side_gif
from mr2ct.io.atomic import atomic_file

__all__ = ["LossCSVLogger", "LossProgressBar", "SampleGridSaver"]


class LossCSVLogger:
    """Append the iteration's named losses to a CSV file every ``interval`` iterations (for loss-curve plots).

    MONAI's ``StatsHandler`` logs text and ``TensorBoardStatsHandler`` writes event files; a CSV is what a
    report or a spreadsheet reads directly. A resumed run appends to the same file after dropping the rows of
    the iterations it repeats (those a killed run logged after its latest checkpoint); so a fresh run, which
    repeats them all, starts a new file.
    """

    def __init__(self, filename: str | Path, interval: int = 10):
        if interval < 1:
            raise ValueError("interval must be positive.")
        self.filename = Path(filename)
        self.interval = interval
        self._header: list[str] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        output: Any = engine.state.output  # the trainer's dict of losses and images
        row = {"epoch": engine.state.epoch, "iteration": engine.state.iteration, **loss_values(output)}
        if self._header is None:  # first write of this run
            self.filename.parent.mkdir(parents=True, exist_ok=True)
            self._header = self._keep_rows_before(engine.state.iteration)
        with open(self.filename, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self._header or list(row), extrasaction="ignore", restval="")
            if self._header is None:
                writer.writeheader()
                self._header = list(row)
            writer.writerow(row)

    def _keep_rows_before(self, iteration: int) -> list[str] | None:
        """Drop the rows of ``iteration`` and later from the file; its header, or None if no row is left."""
        if not self.filename.exists():
            return None
        with open(self.filename, newline="", encoding="utf-8") as f:
            header, *rows = list(csv.reader(f)) or [[]]
        kept = [r for r in rows if int(r[header.index("iteration")]) < iteration]
        if not kept:
            self.filename.unlink()
            return None
        if len(kept) < len(rows):
            with atomic_file(self.filename) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([header, *kept])
        return header


class SampleGridSaver:
    """Every ``interval`` epochs, save a PNG grid (and an animated GIF) of the last batch's real and fake images.

    Rows: real A, fake B, real B, fake A; columns: frames (evenly spaced) of the first clip, or the first
    frames of a 2D batch.
    """

    def __init__(self, output_dir: str | Path, interval: int = 1, num_frames: int = 8):
        self.output_dir = Path(output_dir)
        self.interval = interval
        self.num_frames = num_frames

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        out: Any = engine.state.output  # the trainer's dict of losses and images
        rows = {name: _first_clip(out[name]) for name in ("real_a", "fake_b", "real_b", "fake_a")}
        stem = self.output_dir / f"samples_epoch{engine.state.epoch:04d}"
        save_frame_panel(rows, stem.with_suffix(".png"), num_frames=self.num_frames, value_range=(-1, 1))
        save_side_by_side_gif(rows, stem.with_suffix(".gif"), value_range=(-1, 1))


def _first_clip(x: torch.Tensor) -> torch.Tensor:
    """``(C, D, H, W)`` of the first clip of a 3D batch, or the frames of a 2D batch as ``(C, N, H, W)``."""
    x = x.detach().float().cpu()
    return x[0] if x.ndim == 5 else x.permute(1, 0, 2, 3)


class LossProgressBar(ProgressBar):
    """Ignite's tqdm progress bar (with ETA) showing the generator and discriminator losses.

    Ignite's ``ProgressBar.attach`` takes the output transform as an argument; MONAI workflows call
    ``attach(engine)`` only, so this subclass supplies it.
    """

    def attach(self, engine: Engine, *args, **kwargs) -> None:  # type: ignore[override]
        kwargs.setdefault("output_transform", _short_losses)
        super().attach(engine, *args, **kwargs)


def _short_losses(output) -> dict[str, float]:
    losses = loss_values(output) if isinstance(output, dict) else {}
    return {
        k.removeprefix("loss_"): v for k, v in losses.items() if k in ("loss_g", "loss_d_a", "loss_d_b", "loss_cycle")
    }
