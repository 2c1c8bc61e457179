"""Training under faults: killed runs resume exactly, non-finite losses never reach the weights, same seed same run."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader as MonaiDataLoader
from monai.data import MetaTensor
from monai.handlers import LrScheduleHandler
from monai.transforms import Compose, EnsureTyped, ScaleIntensityRanged
from monai.utils import set_determinism
from torch.utils.data import DataLoader

from mr2ct.data import UnpairedDataset, load_split
from mr2ct.engine import (
    CycleGANTrainer,
    FinalWeightsSaver,
    GeneratorAverage,
    ImagePool,
    LinearDecay,
    ResumableLoader,
    TrainingCheckpointer,
    atomic_torch_save,
    checkpoint_generators,
    get_method,
    latest_checkpoint,
)
from mr2ct.networks import PatchGANDiscriminator, ResnetGenerator, init_weights

from conftest import VMNIST_BUNDLE

SIZE = (8, 16, 16)
NETWORKS = ("g_ab", "g_ba", "d_a", "d_b")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # subprocesses: one thread each, deterministic and not oversubscribed


def build(spatial_dims: int = 3, max_epochs: int = 3, decay: int = 2) -> dict:
    """Tiny networks, optimizers and LR schedules, as a bundle's ``train.json`` makes them."""
    size = SIZE if spatial_dims == 3 else SIZE[1:]
    parts = {
        name: init_weights(ResnetGenerator(spatial_dims, 1, 1, channels=4, num_res_blocks=1)) for name in NETWORKS[:2]
    }
    parts |= {
        name: init_weights(PatchGANDiscriminator(spatial_dims, 1, channels=4, input_size=size)) for name in NETWORKS[2:]
    }
    for kind, nets in (("g", NETWORKS[:2]), ("d", NETWORKS[2:])):
        params = itertools.chain(*(parts[n].parameters() for n in nets))
        parts[f"{kind}_optimizer"] = opt = torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))
        parts[f"{kind}_scheduler"] = torch.optim.lr_scheduler.LambdaLR(opt, LinearDecay(max_epochs, decay))
    return parts


def vmnist_loader(folder, num_workers: int = 0) -> DataLoader:
    transform = Compose(
        [ScaleIntensityRanged(["A", "B"], 0, 255, -1.0, 1.0), EnsureTyped(["A", "B"], track_meta=False)]
    )
    ds = UnpairedDataset(load_split(folder, "train", "A"), load_split(folder, "train", "B"), transform)
    return DataLoader(ds, batch_size=1, shuffle=True, num_workers=num_workers)


def make_trainer(
    parts: dict, loader, handlers=(), max_epochs: int = 3, epoch_length: int = 4, **kwargs
) -> CycleGANTrainer:
    """A trainer whose epoch-level LR schedules step before the other handlers, as in the bundles."""
    schedules = [LrScheduleHandler(parts[f"{k}_scheduler"], print_lr=False) for k in ("g", "d")]
    return CycleGANTrainer(
        device="cpu",
        max_epochs=max_epochs,
        epoch_length=epoch_length,
        train_data_loader=loader,
        train_handlers=schedules + list(handlers),
        pool_size=2,
        lambda_identity=0.5,
        **{k: v for k, v in parts.items() if "scheduler" not in k},
        **kwargs,
    )


def scramble_random_states() -> None:
    torch.manual_seed(999)
    np.random.seed(999)
    random.seed(999)


def assert_same(a, b, where: str = "") -> None:
    """``a`` and ``b`` hold the same values, tensors bit for bit (nested dicts, lists and tuples)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {a.keys()} vs {b.keys()}"
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def snapshot(parts: dict) -> dict:
    return {name: {k: v.clone() for k, v in parts[name].state_dict().items()} for name in NETWORKS}


# -- determinism and exact resume, in process ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["3d", "random"])
def test_same_seed_same_weights(tiny_vmnist, method):
    """Two runs with the same seed and config on CPU end with bit-identical networks and optimizer states."""
    finals = []
    for _ in range(2):
        set_determinism(seed=0)
        parts = build(spatial_dims=3 if method == "3d" else 2)
        make_trainer(
            parts,
            vmnist_loader(tiny_vmnist),
            max_epochs=2,
            epoch_length=3,
            prepare_batch=get_method(method).batch_preparer(4),
        ).run()
        finals.append({k: v.state_dict() for k, v in parts.items()})
    set_determinism(seed=None)
    assert_same(*finals)


@pytest.mark.parametrize("resume_at", [3, 4, 9])  # mid-epoch, an epoch end, mid-epoch with a changed LR
def test_resume_from_any_checkpoint_is_exact(tmp_path, tiny_vmnist, resume_at):
    """Resuming from checkpoint ``resume_at`` (the latest one a killed run left) ends with the weights of the run
    that was never interrupted: the loader's pass spans epochs (epoch_length 4 < loader length), the image pools
    replace old fakes at random and the LR decays every epoch."""
    set_determinism(seed=0)
    parts = build()
    saves = tmp_path / "all"
    make_trainer(
        parts, vmnist_loader(tiny_vmnist), [TrainingCheckpointer(saves, parts, iteration_interval=1, n_saved=100)]
    ).run()
    expected = {k: v.state_dict() for k, v in parts.items()}
    assert [it for it in range(1, 13) if (saves / f"checkpoint_{it}.pt").is_file()] == list(range(1, 13))

    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / f"checkpoint_{resume_at}.pt").write_bytes((saves / f"checkpoint_{resume_at}.pt").read_bytes())
    torch.manual_seed(123)
    fresh = build()  # other initial weights, other random states: all must come from the checkpoint
    scramble_random_states()
    checkpointer = TrainingCheckpointer(killed, fresh, iteration_interval=1, resume=True)
    resumed = make_trainer(fresh, vmnist_loader(tiny_vmnist), [checkpointer])
    started = {}
    resumed.add_event_handler(
        Events.ITERATION_STARTED(once=resume_at + 1), lambda e: started.update(epoch=e.state.epoch)
    )
    resumed.run()
    set_determinism(seed=None)
    assert started["epoch"] == resume_at // 4 + 1 and resumed.state.iteration == 12
    assert_same(expected, {k: v.state_dict() for k, v in fresh.items()})
    assert sorted(p.name for p in killed.iterdir()) == ["checkpoint_11.pt", "checkpoint_12.pt"]


@pytest.mark.parametrize("resume_at", [6, 9])  # before the averaging starts, after its first snapshot
def test_generator_average_is_the_mean_of_the_last_epochs_and_resumes_exactly(tmp_path, tiny_vmnist, resume_at):
    """``gen_average_epochs`` 2 of 3: the generators end as the mean of their weights at the ends of epochs 2 and 3
    (checkpoints 8 and 12), each checkpoint stands for the generators ``model.pt`` would hold had training stopped
    there, and a run resumed from a checkpoint before or inside the averaging ends bit for bit as the full one."""

    def averaged_run(parts: dict, saves, resume: bool = False) -> None:
        average = GeneratorAverage({"g_ab": parts["g_ab"], "g_ba": parts["g_ba"]}, epochs=2, max_epochs=3)
        state = {**parts, "g_average": average}
        checkpointer = TrainingCheckpointer(saves, state, iteration_interval=1, n_saved=100, resume=resume)
        make_trainer(parts, vmnist_loader(tiny_vmnist), [average, checkpointer]).run()

    set_determinism(seed=0)
    parts = build()
    saves = tmp_path / "all"
    averaged_run(parts, saves)
    expected = snapshot(parts)
    load = lambda it: torch.load(saves / f"checkpoint_{it}.pt", weights_only=True)  # noqa: E731
    for name in ("g_ab", "g_ba"):
        mean = {k: (load(8)[name][k] + load(12)[name][k]) / 2 for k in expected[name]}
        torch.testing.assert_close(expected[name], mean)
        assert_same(checkpoint_generators(load(12))[name], expected[name])
        assert_same(checkpoint_generators(load(4))[name], load(4)[name])  # epoch 1: nothing averaged yet
        assert any(not torch.equal(load(12)[name][k], v) for k, v in expected[name].items())  # not the raw ones

    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / f"checkpoint_{resume_at}.pt").write_bytes((saves / f"checkpoint_{resume_at}.pt").read_bytes())
    torch.manual_seed(123)
    fresh = build()
    scramble_random_states()
    averaged_run(fresh, killed, resume=True)
    set_determinism(seed=None)
    assert_same(expected, snapshot(fresh))


def _plain_run_checkpoints(tmp_path, tiny_vmnist) -> Path:
    """Checkpoints 1-12 of a 3-epoch training without averaging (seed 0)."""
    set_determinism(seed=0)
    parts = build()
    saves = tmp_path / "plain"
    make_trainer(
        parts, vmnist_loader(tiny_vmnist), [TrainingCheckpointer(saves, parts, iteration_interval=1, n_saved=100)]
    ).run()
    return saves


def _resume_averaged(tmp_path, checkpoint: Path, tiny_vmnist, epochs: int = 2) -> dict:
    """Resume a training averaging the last ``epochs`` of 3 epochs from ``checkpoint``; its generators."""
    killed = tmp_path / "killed"
    killed.mkdir(parents=True)
    (killed / checkpoint.name).write_bytes(checkpoint.read_bytes())
    torch.manual_seed(123)
    fresh = build()
    scramble_random_states()
    average = GeneratorAverage({"g_ab": fresh["g_ab"], "g_ba": fresh["g_ba"]}, epochs=epochs, max_epochs=3)
    checkpointer = TrainingCheckpointer(killed, {**fresh, "g_average": average}, iteration_interval=1, resume=True)
    make_trainer(fresh, vmnist_loader(tiny_vmnist), [average, checkpointer]).run()
    set_determinism(seed=None)
    return snapshot(fresh)


def test_averaging_resumes_from_a_checkpoint_saved_without_it_before_its_window(tmp_path, tiny_vmnist):
    """Averaging switched on when resuming a training saved without it (checkpoint 6, in epoch 2 of 3, before the
    first snapshot at the end of epoch 2) ends with the mean of the raw weights at the ends of epochs 2 and 3."""
    saves = _plain_run_checkpoints(tmp_path, tiny_vmnist)
    load = lambda it: torch.load(saves / f"checkpoint_{it}.pt", weights_only=True)  # noqa: E731
    averaged = _resume_averaged(tmp_path, saves / "checkpoint_6.pt", tiny_vmnist)
    for name in ("g_ab", "g_ba"):
        mean = {k: (load(8)[name][k] + load(12)[name][k]) / 2 for k in averaged[name]}
        torch.testing.assert_close(averaged[name], mean)


@pytest.mark.parametrize("checkpoint_at, remaining", [(8, 1), (9, 1)])  # epoch 2 ended: its snapshot is lost
def test_averaging_refuses_a_checkpoint_saved_without_it_inside_its_window(
    tmp_path, tiny_vmnist, checkpoint_at, remaining
):
    saves = _plain_run_checkpoints(tmp_path, tiny_vmnist)
    with pytest.raises(
        ValueError,
        match=rf"checkpoint_{checkpoint_at}\.pt holds no generator averages.*"
        rf"gen_average_epochs {remaining}\)",
    ):
        _resume_averaged(tmp_path, saves / f"checkpoint_{checkpoint_at}.pt", tiny_vmnist)
    # averaging only the epochs still to come is accepted
    assert set(_resume_averaged(tmp_path / "again", saves / f"checkpoint_{checkpoint_at}.pt", tiny_vmnist, 1))


def test_resume_refuses_a_checkpoint_without_part_of_the_state(tmp_path, tiny_vmnist):
    """A checkpoint that lacks a network or optimizer of the training (saved with other settings) is refused in
    one line naming the file and the part, before any weight is loaded."""
    saves = _plain_run_checkpoints(tmp_path, tiny_vmnist)
    checkpoint = torch.load(saves / "checkpoint_4.pt", weights_only=True)
    del checkpoint["d_b"]
    killed = tmp_path / "killed"
    killed.mkdir()
    torch.save(checkpoint, killed / "checkpoint_4.pt")
    fresh = build()
    before = snapshot(fresh)
    with pytest.raises(ValueError, match=r"checkpoint_4\.pt holds no d_b: it was saved by a training with other"):
        make_trainer(fresh, vmnist_loader(tiny_vmnist), [TrainingCheckpointer(killed, fresh, resume=True)]).run()
    assert_same(before, snapshot(fresh))


def test_generator_average_refuses_a_window_longer_than_training_and_is_off_at_zero():
    net = ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1)
    with pytest.raises(ValueError, match=r"\[0, max_epochs=3\], got 4"):
        GeneratorAverage({"g_ab": net}, epochs=4, max_epochs=3)
    off = GeneratorAverage({"g_ab": net}, epochs=0, max_epochs=3)
    engine = Engine(lambda engine, batch: None)
    off.attach(engine)
    assert off.state_dict() == {} and not engine.has_event_handler(off.update)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumable_loader_replays_the_data_stream(tiny_vmnist, num_workers):
    """A restored loader yields the batches the interrupted pass would have yielded next (also from workers,
    whose seeds are drawn when a pass starts), and leaves the random states as it found them."""
    torch.manual_seed(0)
    stream = ResumableLoader(vmnist_loader(tiny_vmnist, num_workers))
    batches = iter(stream)
    for _ in range(3):
        next(batches)
    state, rng = stream.state_dict(), torch.get_rng_state()
    expected = [next(batches)["B"]]
    rng_after = torch.get_rng_state()  # without workers, loading a batch draws its B index here
    expected += [b["B"] for b in batches]

    restored = ResumableLoader(vmnist_loader(tiny_vmnist, num_workers))
    restored.load_state_dict(state)
    torch.set_rng_state(rng)
    batches = iter(restored)
    replayed = [next(batches)["B"]]
    assert torch.equal(torch.get_rng_state(), rng_after)
    assert_same(expected, replayed + [b["B"] for b in batches])
    assert len(restored) == len(stream.loader)


def test_image_pool_keeps_copies_and_round_trips():
    """Stored fakes are copies (a view would keep its whole batch in memory and in checkpoints)."""
    torch.manual_seed(0)
    pool = ImagePool(pool_size=3)
    pool.query(torch.rand(4, 1, 2, 5, 5))
    assert [img.untyped_storage().nbytes() for img in pool.images] == [2 * 5 * 5 * 4] * 3
    other = ImagePool(pool_size=3)
    other.load_state_dict(pool.state_dict())
    torch.manual_seed(1)
    a = pool.query(torch.zeros(4, 1, 2, 5, 5))
    torch.manual_seed(1)
    assert torch.equal(a, other.query(torch.zeros(4, 1, 2, 5, 5)))


# -- checkpoint files under kills ----------------------------------------------------------------------------------

_WRITER = """
import sys, torch
from mr2ct.engine import atomic_torch_save
for i in range(10**6):
    atomic_torch_save({"version": i, "x": torch.full((2_000_000,), float(i))}, sys.argv[1])
"""


def test_checkpoint_file_survives_sigkill_while_writing(tmp_path):
    """A writer killed at a random moment leaves the old or the new file, whole; its temporary file is no
    checkpoint to ``latest_checkpoint`` and the next checkpointer removes it."""
    path = tmp_path / "checkpoint_3.pt"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=ENV)
    try:
        deadline = time.time() + 120
        while not path.exists() and writer.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(random.uniform(0.05, 0.5))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved["x"], torch.full((2_000_000,), float(saved["version"])))

    (tmp_path / ".checkpoint_9.pt.abc123.part").write_bytes(b"half a checkpoint")  # as a kill mid-write leaves
    assert latest_checkpoint(tmp_path) == path
    TrainingCheckpointer(tmp_path, {}).attach(Engine(lambda engine, batch: None))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_3.pt"]


def test_atomic_save_fsyncs_file_and_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic_torch_save({"x": torch.ones(2)}, tmp_path / "model.pt")
    assert len(synced) == 2  # the data, then the rename


# -- non-finite losses ---------------------------------------------------------------------------------------------


def volume(value: float = 0.0) -> torch.Tensor:
    """A ``(1, D, H, W)`` clip: a ramp (instance norm needs some contrast) plus ``value``."""
    return torch.full((1, *SIZE), value) + torch.linspace(-0.5, 0.5, SIZE[-1])


FAULTS = {
    # name: (batch item 2, or None to patch the loss instead; expected non-finite losses; expected text on the batch)
    "nan_in_A_metatensor": (
        {
            "A": MetaTensor(volume(float("nan")), meta={"filename_or_obj": "bad_mr.nii.gz"}),
            "B": MetaTensor(volume(), meta={"filename_or_obj": "good_ct.nii.gz"}),
        },
        "loss_g_ab",
        "A: bad_mr.nii.gz; B: good_ct.nii.gz",
    ),
    "inf_in_B_meta_dict": (
        {"A": volume(), "B": volume(float("inf")), "B_meta_dict": {"filename_or_obj": "bad_ct.nii.gz"}},
        "loss_g_ba",
        "B: bad_ct.nii.gz",
    ),
    "nan_synthetic": ({"A": volume(float("nan")), "B": volume()}, "loss_g_ab", "synthetic or in-memory data"),
    "nan_generator_loss": (None, "loss_g_ab", "synthetic or in-memory data"),
    "inf_discriminator_loss": (None, "loss_d_a", "synthetic or in-memory data"),
}


def fault_items(batch2: dict | None, n: int = 4, bad_from: int = 2, bad_to: int = 2) -> list[dict]:
    good = {"A": volume(0.1), "B": volume(-0.1)}
    if batch2 is None:
        return [good] * n
    return [batch2 if bad_from <= i + 1 <= bad_to else {**batch2, **good} for i in range(n)]


def patch_loss(trainer: CycleGANTrainer, fault: str, iterations: set[int]) -> None:
    """Make the generator's or discriminator's adversarial loss NaN/Inf at the given iterations."""
    loss_fn = trainer.adversarial_loss_fn
    bad_value, for_d = (float("nan"), False) if fault == "nan_generator_loss" else (float("inf"), True)

    def faulty(logits, target_is_real, for_discriminator):
        loss = loss_fn(logits, target_is_real=target_is_real, for_discriminator=for_discriminator)
        bad = trainer.state.iteration in iterations and for_discriminator == for_d
        return loss * bad_value if bad else loss

    trainer.adversarial_loss_fn = faulty


@pytest.mark.parametrize("fault", list(FAULTS))
def test_nonfinite_iteration_is_skipped_and_reported(caplog, fault):
    """The faulty iteration 2 steps no optimizer (G and D weights and Adam states stay), puts no non-finite fake
    into the image pools, logs the losses and the batch's files; iteration 3 trains normally."""
    batch2, loss_name, sources = FAULTS[fault]
    torch.manual_seed(0)
    parts = build()
    trainer = make_trainer(parts, MonaiDataLoader(fault_items(batch2), batch_size=1), max_epochs=1, epoch_length=4)
    if batch2 is None:
        patch_loss(trainer, fault, {2})
    seen = {}
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: seen.update(
            {e.state.iteration: (snapshot(parts), len(trainer.pool_a.images), e.state.nonfinite_steps)}
        ),
    )
    with caplog.at_level(logging.WARNING):
        trainer.run()

    assert_same(seen[1][0], seen[2][0])  # no weight moved in iteration 2
    for name in NETWORKS:  # and all moved in iteration 3
        assert any(not torch.equal(w, seen[3][0][name][k]) for k, w in seen[2][0][name].items()), name
    fakes_pooled = 2 if "discriminator" in fault else 1  # fakes are finite when only a D loss is not
    assert [seen[i][1] for i in (1, 2)] == [1, fakes_pooled] and [seen[i][2] for i in (1, 2, 3)] == [0, 1, 0]
    steps = {k: next(iter(parts[f"{k}_optimizer"].state.values()))["step"].item() for k in ("g", "d")}
    assert steps == {"g": 3.0, "d": 3.0}  # 4 iterations, one skipped
    assert all(torch.isfinite(t).all() for net in NETWORKS for t in parts[net].state_dict().values())
    assert all(torch.isfinite(img).all() for img in trainer.pool_a.images + trainer.pool_b.images)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("iteration 2: non-finite ")
    assert loss_name in warnings[0] and sources in warnings[0], warnings[0]


def test_consecutive_nonfinite_iterations_stop_the_run_and_keep_good_files(tmp_path):
    """From iteration 3 every batch holds NaN: after max_nonfinite_steps=3 skipped iterations the run stops with
    a clear error in iteration 5; every checkpoint holds the finite weights of iteration 2 and model.pt is kept."""
    torch.manual_seed(0)
    parts = build()
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes(b"weights of an earlier run")
    handlers = [
        TrainingCheckpointer(models, parts, iteration_interval=1),
        FinalWeightsSaver(models, {"model.pt": parts["g_ab"]}),
    ]
    items = fault_items({"A": volume(float("nan")), "B": volume()}, n=10, bad_from=3, bad_to=10)
    trainer = make_trainer(
        parts, MonaiDataLoader(items, batch_size=1), handlers, max_epochs=1, epoch_length=10, max_nonfinite_steps=3
    )
    good = {}
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: good.update(snapshot(parts)))
    message = "stopping: 3 consecutive iterations had non-finite losses, the last one: iteration 5: non-finite"
    with pytest.raises(FloatingPointError, match=f"{message} loss_g_ab"):
        trainer.run()
    assert trainer.state.iteration == 5
    assert (models / "model.pt").read_bytes() == b"weights of an earlier run"
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_3.pt", "checkpoint_4.pt", "model.pt"]
    for path in models.glob("checkpoint_*.pt"):
        saved = torch.load(path, weights_only=True)
        assert_same(good, {name: saved[name] for name in NETWORKS}, path.name)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_nonfinite_limit_none_only_skips():
    torch.manual_seed(0)
    parts = build()
    items = fault_items({"A": volume(float("nan")), "B": volume()}, n=8, bad_from=1, bad_to=8)
    trainer = make_trainer(
        parts, MonaiDataLoader(items, batch_size=1), max_epochs=1, epoch_length=8, max_nonfinite_steps=None
    )
    trainer.run()
    assert trainer.state.iteration == 8 and trainer.state.nonfinite_steps == 8
    assert not parts["g_optimizer"].state  # never stepped


def test_nonfinite_weights_are_never_saved(tmp_path, caplog):
    """Should NaN reach a network by another way, no checkpoint is written from it and model.pt is kept."""
    torch.manual_seed(0)
    parts = build()
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes(b"good weights")
    trainer = make_trainer(parts, MonaiDataLoader(fault_items(None), batch_size=1), max_epochs=1, epoch_length=2)

    def corrupt(engine):
        with torch.no_grad():
            next(parts["d_b"].parameters()).fill_(float("nan"))

    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2), corrupt)
    TrainingCheckpointer(models, parts, iteration_interval=1).attach(trainer)
    FinalWeightsSaver(models, {"model.pt": parts["g_ab"], "model_d_b.pt": parts["d_b"]}).attach(trainer)
    with caplog.at_level(logging.WARNING), pytest.raises(FloatingPointError, match="model_d_b.pt hold non-finite"):
        trainer.run()
    assert "d_b hold non-finite values; no checkpoint written" in caplog.text
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_1.pt", "model.pt"]
    assert (models / "model.pt").read_bytes() == b"good weights"


# -- the bundle killed with SIGKILL and resumed --------------------------------------------------------------------

CONFIGS = VMNIST_BUNDLE / "configs"
TINY = {
    "depth": 8,
    "size": [16, 16],
    "ngf": 4,
    "ndf": 4,
    "num_res_blocks": 1,
    "num_digits": 40,
    "num_workers": 0,
    "max_epochs": 3,
    "decay_epochs": 2,
    "epoch_length": 6,
    "pool_size": 2,
    "lambda_identity": 0.5,
    "val_interval": 2,
    "num_val_cases": 2,
    "log_interval": 1,
}


def bundle_command(tmp_path, dataset_dir, run: str, **overrides) -> list[str]:
    settings = {
        **TINY,
        "bundle_root": str(VMNIST_BUNDLE),
        "dataset_dir": str(dataset_dir),
        "ckpt_dir": str(tmp_path / run / "models"),
        "output_dir": str(tmp_path / run / "runs"),
        **overrides,
    }
    args = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        str(CONFIGS / "train.json"),
        "--logging_file",
        str(CONFIGS / "logging.conf"),
    ]
    for k, v in settings.items():
        args += [f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)]
    return args


def run_command(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, check=False, capture_output=True, encoding="utf-8", errors="replace", timeout=300, env=ENV
    )


def logged_iterations(log) -> int:
    """Iterations in a losses.csv written every iteration (0 before the first)."""
    return max(len(log.read_text(encoding="utf-8").splitlines()) - 1, 0) if log.exists() else 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_vmnist):
    root = tmp_path_factory.mktemp("uninterrupted")
    result = run_command(bundle_command(root, tiny_vmnist.parent, "run"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root / "run"


@pytest.mark.parametrize("ckpt_iteration_interval", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_bundle_killed_at_random_resumes_to_identical_weights(
    tmp_path, tiny_vmnist, uninterrupted, ckpt_iteration_interval
):
    """``monai.bundle run training`` killed with SIGKILL at a random moment, then run with ``--resume true``,
    ends with the checkpoint (networks, optimizers, LR schedules, trainer, pools, random states), the model.pt
    and the loss log of the run that was never interrupted: bit for bit."""
    rng = random.Random()
    after = rng.randint(7 if ckpt_iteration_interval == 0 else 3, 16)  # 18 in all; a first checkpoint exists by then
    delay = rng.uniform(0, 0.03)
    args = bundle_command(tmp_path, tiny_vmnist.parent, "killed", ckpt_iteration_interval=ckpt_iteration_interval)
    models, log = tmp_path / "killed" / "models", tmp_path / "killed" / "runs" / "losses.csv"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 240
        while logged_iterations(log) < after and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    case = f"killed {delay:.3f} s after iteration {after} was logged"
    assert proc.returncode == -signal.SIGKILL, f"not killed: {case}"
    assert not (models / "model.pt").exists(), f"killed after training: {case}"

    resumed = run_command(args + ["--resume", "true"])
    assert resumed.returncode == 0, case + resumed.stdout[-3000:] + resumed.stderr[-3000:]
    start = int(re.search(r"resuming from \S*checkpoint_(\d+)\.pt", resumed.stdout + resumed.stderr).group(1))
    assert start >= after - (ckpt_iteration_interval or 6), case  # the latest checkpoint at the kill
    final = {p.name for p in models.iterdir()}
    assert {"model.pt", "model_ba.pt", "model_settings.json", "checkpoint_18.pt"} <= final and len(final) == 5, (
        case,
        final,
    )  # no .part
    assert_same(
        torch.load(uninterrupted / "models" / "checkpoint_18.pt", weights_only=True),
        torch.load(models / "checkpoint_18.pt", weights_only=True),
        case,
    )
    for name in ("model.pt", "model_ba.pt"):
        assert_same(
            torch.load(uninterrupted / "models" / name, weights_only=True),
            torch.load(models / name, weights_only=True),
            f"{case}: {name}",
        )
    reference = (uninterrupted / "runs" / "losses.csv").read_text(encoding="utf-8")
    assert (tmp_path / "killed" / "runs" / "losses.csv").read_text(encoding="utf-8") == reference, case
