"""Atomic training checkpoints, exact resume, and the final weights of a bundle (``models/model.pt``)."""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.handlers.checkpoint import BaseSaveHandler
from monai.handlers import CheckpointLoader

from mr2ct.engine.distributed import get_rank
from mr2ct.io.atomic import atomic_file, atomic_write_text

__all__ = [
    "EndlessLoader",
    "FinalWeightsSaver",
    "RandomStates",
    "ResumableLoader",
    "TrainingCheckpointer",
    "SETTINGS_FILE",
    "atomic_torch_save",
    "check_weights_settings",
    "latest_checkpoint",
]

logger = logging.getLogger(__name__)
_PREFIX = "checkpoint"
_PATTERN = re.compile(rf"^{_PREFIX}_(\d+)\.pt$")
SETTINGS_FILE = "model_settings.json"
"""Beside a bundle's final weights: the settings the networks were built and trained with (see FinalWeightsSaver)."""


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`~mr2ct.io.atomic.atomic_file` with ``durable=True``.

    A reader, or a run killed at any moment, never sees a partial file: ``path`` is the old file or the new
    one, after a power loss too (the data and the rename are fsynced). The temporary file of a killed writer,
    ``.<name>.<random>.part``, is not a checkpoint name (see :func:`latest_checkpoint`).
    """
    with atomic_file(path, suffix=".part", durable=True) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def _checkpoints(save_dir: str | Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of the training checkpoints in ``save_dir``, oldest first."""
    return sorted((int(m.group(1)), p) for p in Path(save_dir).glob(f"{_PREFIX}_*.pt") if (m := _PATTERN.match(p.name)))


def latest_checkpoint(save_dir: str | Path) -> Path | None:
    """The training checkpoint in ``save_dir`` with the highest iteration number, or None if there is none."""
    found = _checkpoints(save_dir)
    return found[-1][1] if found else None


def _all_finite(module: nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite (no NaN or Inf)."""
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point())


class RandomStates:
    """The global random generators (torch CPU and CUDA, numpy, Python's ``random``) as a checkpointable object.

    ``state_dict`` reads their current states and ``load_state_dict`` sets them, so that a resumed run draws
    the same random numbers (image pool choices, data order, dropout) as an uninterrupted one. The states are
    tensors and plain Python values, loadable with ``torch.load(weights_only=True)``.
    """

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state(legacy=False)
        key = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {**numpy_state, "state": {**numpy_state["state"], "key": key}},
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        numpy_state = state_dict["numpy"]
        key = numpy_state["state"]["key"].numpy().astype(np.uint32)
        np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})
        version, internal, gauss_next = state_dict["python"]
        random.setstate((version, tuple(internal), gauss_next))


class ResumableLoader:
    """Iterate over ``loader`` with the position in its data stream as part of the training state.

    On resume Ignite starts a fresh pass (``iter(loader)``), which would shuffle anew and repeat or skip
    samples (a pass also outlives an epoch when ``epoch_length`` is shorter than the loader). This wrapper
    records the state of the generator each pass draws its order and worker seeds from (the loader's
    ``generator``, else torch's global one) and how many batches the pass has yielded. After
    ``load_state_dict``, the next pass starts from the recorded state, draws the batches already consumed
    again (the same order and worker seeds), then puts back the global random states it found: training goes
    on as if never interrupted. Not exact with ``persistent_workers=True``, whose workers outlive a pass.

    Args:
        loader: a ``DataLoader`` or any sized iterable.
    """

    def __init__(self, loader: Iterable):
        self.loader = loader
        self.generator: torch.Generator = getattr(loader, "generator", None) or torch.default_generator
        self._start: torch.Tensor | None = None
        self._consumed = 0
        self._replay = False

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        replay, self._replay = self._replay, False
        if replay and self._start is not None:
            found = RandomStates().state_dict()
            self.generator.set_state(self._start)
        else:
            self._start, self._consumed = self.generator.get_state(), 0
        batches = iter(self.loader)
        if replay:
            for _ in itertools.islice(batches, self._consumed):
                pass
            RandomStates().load_state_dict(found)
        for batch in batches:
            self._consumed += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"start": self._start, "consumed": self._consumed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._start, self._consumed = state_dict["start"], state_dict["consumed"]
        self._replay = self._start is not None


class EndlessLoader:
    """Draw batches from ``loader`` one at a time, pass after pass, with the position as part of the training state.

    For a second data stream that a trainer draws from at each iteration besides its own loader (the few
    registered pairs of semi-supervised training): its passes are independent of the epochs. The position is a
    :class:`ResumableLoader`'s, so a resumed run draws the batches an uninterrupted one would have drawn.

    Args:
        loader: a ``DataLoader`` or any non-empty sized iterable.
    """

    def __init__(self, loader: Iterable):
        if len(loader) == 0:  # type: ignore[arg-type]
            raise ValueError("EndlessLoader needs a loader with at least one batch.")
        self.stream = ResumableLoader(loader)
        self._batches: Iterator | None = None

    def __len__(self) -> int:
        return len(self.stream)

    def next(self) -> Any:
        """The next batch; a new pass starts when one ends (also when a restored pass was at its end)."""
        end = object()
        for _ in range(2):
            if self._batches is None:
                self._batches = iter(self.stream)
            batch = next(self._batches, end)
            if batch is not end:
                return batch
            self._batches = None
        raise RuntimeError("the loader of the EndlessLoader yielded no batch in a whole pass.")

    def state_dict(self) -> dict[str, Any]:
        return self.stream.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stream.load_state_dict(state_dict)
        self._batches = None


class _AtomicDiskSaver(BaseSaveHandler):
    """Ignite save handler writing with :func:`atomic_torch_save` (Ignite's ``DiskSaver`` does not fsync)."""

    def __init__(self, dirname: Path):
        self.dirname = dirname

    def __call__(self, checkpoint: Any, filename: str, metadata: Any = None) -> None:
        atomic_torch_save(checkpoint, self.dirname / filename)

    def remove(self, filename: str) -> None:
        (self.dirname / filename).unlink(missing_ok=True)


class TrainingCheckpointer:
    """Save the full training state periodically (atomically) and optionally resume from the latest one.

    Files are ``<save_dir>/checkpoint_<iteration>.pt``, each holding every object of ``save_dict``, the trainer
    (epoch, iteration and, for :class:`~mr2ct.engine.CycleGANTrainer`, its image pools and data position) and
    the random states: a run resumed from a checkpoint computes the same weights as one never interrupted
    (on CPU; GPU kernels may not be deterministic).

    In a ``torchrun`` process group rank 0 writes the checkpoints; with ``resume`` every rank loads the latest
    (networks, optimizers, schedulers, trainer state), so all ranks continue from the same weights. Ranks > 0
    keep their own random states (seeded per rank) and take rank 0's image pools: a resumed multi-process run
    continues correctly but is not bit-identical to an uninterrupted one. A killed run loses the iterations since
    its latest checkpoint. No checkpoint is written while a network of ``save_dict`` holds NaN or Inf values, so the
    last good one stays the latest.

    Attach it after the handlers that change state or draw random numbers at the same event (an epoch-level
    LR schedule, validation), so that a checkpoint holds the state the next iteration starts from; for that
    reason an iteration that ends an epoch is saved at the end of the epoch, after those handlers.

    Args:
        save_dir: folder of the checkpoints (a bundle's ``models/``).
        save_dict: name -> object with ``state_dict``/``load_state_dict`` (networks, optimizers, schedulers);
            ``None`` entries are left out (an optional part of the state that is switched off).
        interval: save every ``interval`` epochs.
        iteration_interval: also save every ``iteration_interval`` iterations; 0: at epoch ends only.
        n_saved: how many recent checkpoints to keep (None: all, e.g. to evaluate each of them afterwards).
        resume: load the latest checkpoint of ``save_dir`` when training starts.
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_dict: dict[str, Any],
        interval: int = 1,
        iteration_interval: int = 0,
        n_saved: int | None = 2,
        resume: bool = False,
    ):
        if interval < 1 or (n_saved is not None and n_saved < 1) or iteration_interval < 0:
            raise ValueError("interval and n_saved (or None) must be positive, iteration_interval >= 0.")
        self.save_dir = Path(save_dir)
        self.save_dict = {name: obj for name, obj in save_dict.items() if obj is not None}
        self.interval = interval
        self.iteration_interval = iteration_interval
        self.n_saved = n_saved
        self.resume = resume
        self._saver: Checkpoint | None = None

    def attach(self, engine: Engine) -> None:
        if get_rank() > 0:  # in a process group, rank 0 writes; the other ranks only resume
            if self.resume:
                self._resume_from(self._latest(), {**self.save_dict, "trainer": engine}, engine)
            return
        save_dict = {**self.save_dict, "trainer": engine, "random_states": RandomStates()}
        self._saver = Checkpoint(
            save_dict,
            _AtomicDiskSaver(self.save_dir),
            filename_prefix="",
            n_saved=self.n_saved,
            global_step_transform=lambda e, _: e.state.iteration,
        )
        events = Events.EPOCH_COMPLETED(event_filter=self._epoch_due) | Events.ITERATION_COMPLETED(
            event_filter=self._iteration_due
        )
        engine.add_event_handler(events, self._save)
        for partial in self.save_dir.glob(f".{_PREFIX}_*.part"):
            logger.info(f"removing {partial}, the unfinished checkpoint of a killed run")
            partial.unlink()
        if self.resume:
            path = self._latest()
            # earlier checkpoints of the run are rotated out like this run's own
            self._saver.load_state_dict({"_saved": [(it, p.name) for it, p in _checkpoints(self.save_dir)]})
            self._resume_from(path, save_dict, engine)

    def _latest(self) -> Path:
        path = latest_checkpoint(self.save_dir)
        if path is None:
            raise FileNotFoundError(f"--resume was given but {self.save_dir} holds no {_PREFIX}_<iteration>.pt file.")
        return path

    @staticmethod
    def _resume_from(path: Path, load_dict: dict[str, Any], engine: Engine) -> None:
        logger.info(f"resuming from {path}")
        load_dict = _restorable(path, load_dict)
        CheckpointLoader(load_path=str(path), load_dict=load_dict, map_location="cpu").attach(engine)  # type: ignore[arg-type]  # torch.load takes a device name

    def _due(self, iteration: int) -> bool:
        return self.iteration_interval > 0 and iteration % self.iteration_interval == 0

    def _epoch_due(self, engine: Engine, epoch: int) -> bool:
        return epoch % self.interval == 0 or self._due(engine.state.iteration)

    def _iteration_due(self, engine: Engine, iteration: int) -> bool:
        return self._due(iteration) and iteration % cast(int, engine.state.epoch_length) != 0

    def _save(self, engine: Engine) -> None:
        bad = [name for name, obj in self.save_dict.items() if isinstance(obj, nn.Module) and not _all_finite(obj)]
        if bad:
            logger.warning(
                f"iteration {engine.state.iteration}: {', '.join(bad)} hold non-finite values; no checkpoint written,"
                f" the latest stays {latest_checkpoint(self.save_dir)}."
            )
            return
        if self._saver is not None:  # None before attach and on ranks > 0, which write nothing
            self._saver(engine)


def _restorable(path: Path, load_dict: dict[str, Any]) -> dict[str, Any]:
    """The part of ``load_dict`` that checkpoint ``path`` restores; ``ValueError`` naming the file and the parts it
    lacks (a checkpoint of a training with other settings) unless each such object accepts starting afresh.

    An object whose state the checkpoint lacks may define ``state_missing(completed_epochs, source)``: it returns
    when starting from its initial state is right at that point of training (e.g. a weight average whose window
    has not begun, :class:`~mr2ct.engine.GeneratorAverage`) and raises ``ValueError`` otherwise. The checkpoint is
    memory-mapped, not read, here."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    missing = [name for name in load_dict if name not in checkpoint]
    if not missing:
        return load_dict
    unexplained = [name for name in missing if not hasattr(load_dict[name], "state_missing")]
    if unexplained:
        raise ValueError(
            f"{path} holds no {', '.join(unexplained)}: it was saved by a training with other settings; resume with "
            "those settings, or start a new training in another folder."
        )
    trainer = checkpoint.get("trainer", {})
    completed_epochs = int(trainer.get("iteration", 0)) // max(int(trainer.get("epoch_length") or 1), 1)
    for name in missing:
        load_dict[name].state_missing(completed_epochs, str(path))
    return {name: obj for name, obj in load_dict.items() if name not in missing}


class FinalWeightsSaver:
    """When training completes, write each network's ``state_dict`` to ``<save_dir>/<filename>`` atomically.

    A bundle's ``models/model.pt`` is the A->B generator, loadable into ``network_def`` with
    ``load_state_dict``; ``models/model_ba.pt`` is the B->A generator. Networks holding NaN or Inf values
    are not written (existing files are kept): a ``FloatingPointError`` says so. With ``settings``, the
    settings that the networks need to be rebuilt and used alike (e.g. ``ngf``, ``num_res_blocks``, the CT
    window) are written to ``<save_dir>/model_settings.json`` too, so that inference with other settings is
    refused with a clear message (:func:`check_weights_settings`) instead of a ``state_dict`` traceback.

    Args:
        save_dir: destination folder.
        networks: file name -> network.
        settings: config key -> value (JSON values), or None.
    """

    def __init__(self, save_dir: str | Path, networks: dict[str, torch.nn.Module], settings: dict | None = None):
        self.save_dir = Path(save_dir)
        self.networks = networks
        self.settings = dict(settings) if settings is not None else None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        bad = [name for name, net in self.networks.items() if not _all_finite(net)]
        if bad:
            raise FloatingPointError(
                f"the networks for {', '.join(bad)} hold non-finite weights; nothing written to {self.save_dir}."
            )
        for name, net in self.networks.items():
            atomic_torch_save(net.state_dict(), self.save_dir / name)
            logger.info(f"saved {self.save_dir / name}")
        if self.settings is not None:
            atomic_write_text(
                self.save_dir / SETTINGS_FILE, json.dumps(self.settings, indent=2, default=_json_value) + "\n"
            )


def _json_value(value: Any) -> Any:
    """Tuples and tensors of a config as JSON lists."""
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _same(a: Any, b: Any) -> bool:
    """Config values compared as JSON (a tuple equals a list, 1 equals 1.0)."""
    return json.loads(json.dumps(a, default=_json_value)) == json.loads(json.dumps(b, default=_json_value))


def _option(key: str, value: Any) -> str:
    return f"--{key} {json.dumps(value, default=_json_value).replace(' ', '')}"


def check_weights_settings(load_path: str | Path, settings: dict[str, Any], network: nn.Module | None = None) -> None:
    """Refuse, before any work, weights that were trained with other network settings than the running config.

    Compares ``settings`` with the ``model_settings.json`` that training wrote beside the weights (see
    :class:`FinalWeightsSaver`). Without that file (weights from elsewhere), or when it lacks some of the keys
    (written before a setting existed), the weights' tensor names and shapes are compared with ``network``'s.

    Raises:
        ValueError: one line naming the differing keys, the values of both, and the options that select the
            weights' settings (e.g. ``--ngf 8 --num_res_blocks 3``, or the ``quick.json`` the model was trained with).
    """
    load_path = Path(load_path)
    file = load_path.parent / SETTINGS_FILE
    unrecorded: list[str] = []  # settings the file (if any) predates: checked by the tensors below
    if file.is_file():
        trained = json.loads(file.read_text(encoding="utf-8"))
        differ = [key for key in settings if key in trained and not _same(settings[key], trained[key])]
        if differ:
            raise ValueError(
                f"the weights {load_path} were trained with other settings ({file}): "
                + ", ".join(
                    f"{k} {json.dumps(trained[k], default=_json_value)} (this run: "
                    f"{json.dumps(settings[k], default=_json_value)})"
                    for k in differ
                )
                + "; pass "
                + " ".join(_option(k, trained[k]) for k in differ)
                + " (or the quick.json / config overrides the model was trained with)."
            )
        unrecorded = sorted(set(settings) - set(trained))
        if not unrecorded:
            return
    if network is None:
        return
    weights = torch.load(load_path, map_location="cpu", weights_only=True)
    weights = weights.get("model", weights) if isinstance(weights, dict) else weights
    expected = network.state_dict()
    missing = sorted(set(expected) - set(weights))
    wrong = sorted(k for k in set(expected) & set(weights) if tuple(expected[k].shape) != tuple(weights[k].shape))
    if missing or wrong or set(weights) - set(expected):
        example = (
            f"{wrong[0]} is {tuple(weights[wrong[0]].shape)} there, {tuple(expected[wrong[0]].shape)} here"
            if wrong
            else f"{len(missing)} missing and {len(set(weights) - set(expected))} unexpected tensors"
        )
        which = (
            f"their {SETTINGS_FILE} does not record {', '.join(unrecorded)}"
            if unrecorded
            else f"no {SETTINGS_FILE} beside them says which"
        )
        raise ValueError(
            f"the weights {load_path} do not fit this run's network ({example}); they were trained with other "
            f"network settings ({which}): pass the settings of their training (e.g. --ngf, --num_res_blocks, "
            "--gen_strides, --gen_outer_kernel, --gen_sampling_kernel, or its quick.json)."
        )
