"""Atomic training checkpoints, resume, and the final weights of a bundle (``models/model.pt``)."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointLoader

__all__ = ["FinalWeightsSaver", "TrainingCheckpointer", "atomic_torch_save", "latest_checkpoint"]

logger = logging.getLogger(__name__)
_PREFIX = "checkpoint"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: a reader never sees a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates owner-only files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def latest_checkpoint(save_dir: str | Path) -> Path | None:
    """The training checkpoint in ``save_dir`` with the highest iteration number, or None if there is none."""
    pattern = re.compile(rf"^{_PREFIX}_(\d+)\.pt$")
    found = [(int(m.group(1)), p) for p in Path(save_dir).glob(f"{_PREFIX}_*.pt") if (m := pattern.match(p.name))]
    return max(found)[1] if found else None


class TrainingCheckpointer:
    """Save the full training state periodically (atomically) and optionally resume from the latest one.

    Files are ``<save_dir>/checkpoint_<iteration>.pt``, each holding every object of ``save_dict`` and the
    trainer itself. Ignite's ``DiskSaver(atomic=True)`` writes to a temporary file and renames it; MONAI's
    ``CheckpointSaver`` does not. Attach it after handlers that change state at the same event (an epoch-level
    LR schedule handler, say), so that a checkpoint holds the state the next iteration starts from.

    Args:
        save_dir: folder of the checkpoints (a bundle's ``models/``).
        save_dict: name -> object with ``state_dict``/``load_state_dict`` (networks, optimizers, schedulers). The
            engine this handler is attached to is added as ``"trainer"``, so epoch and iteration are resumed.
        interval: save every ``interval`` epochs (``epoch_level``) or iterations.
        epoch_level: whether ``interval`` counts epochs or iterations.
        n_saved: how many recent checkpoints to keep.
        resume: load the latest checkpoint of ``save_dir`` when training starts.
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_dict: dict[str, Any],
        interval: int = 1,
        epoch_level: bool = True,
        n_saved: int = 2,
        resume: bool = False,
    ):
        if interval < 1 or n_saved < 1:
            raise ValueError("interval and n_saved must be positive.")
        self.save_dir = Path(save_dir)
        self.save_dict = save_dict
        self.interval = interval
        self.epoch_level = epoch_level
        self.n_saved = n_saved
        self.resume = resume

    def attach(self, engine: Engine) -> None:
        save_dict = {**self.save_dict, "trainer": engine}
        saver = Checkpoint(
            save_dict,
            DiskSaver(str(self.save_dir), require_empty=False, atomic=True, create_dir=True),
            filename_prefix="",
            n_saved=self.n_saved,
            global_step_transform=lambda e, _: e.state.iteration,
        )
        event = Events.EPOCH_COMPLETED if self.epoch_level else Events.ITERATION_COMPLETED
        engine.add_event_handler(event(every=self.interval), saver)
        if self.resume:
            path = latest_checkpoint(self.save_dir)
            if path is None:
                raise FileNotFoundError(f"--resume was given but {self.save_dir} holds no {_PREFIX}_<iteration>.pt file.")
            logger.info(f"resuming from {path}")
            CheckpointLoader(load_path=str(path), load_dict=save_dict, map_location="cpu").attach(engine)


class FinalWeightsSaver:
    """When training completes, write each network's ``state_dict`` to ``<save_dir>/<filename>`` atomically.

    A bundle's ``models/model.pt`` is the A->B generator, loadable into ``network_def`` with
    ``load_state_dict``; ``models/model_ba.pt`` is the B->A generator.

    Args:
        save_dir: destination folder.
        networks: file name -> network.
    """

    def __init__(self, save_dir: str | Path, networks: dict[str, torch.nn.Module]):
        self.save_dir = Path(save_dir)
        self.networks = networks

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        for name, net in self.networks.items():
            atomic_torch_save(net.state_dict(), self.save_dir / name)
            logger.info(f"saved {self.save_dir / name}")
