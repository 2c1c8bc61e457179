"""Training behaviour: a tiny 3D CycleGAN learns, checkpoints resume the full training state."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.handlers import LrScheduleHandler
from monai.transforms import Compose, EnsureTyped, ScaleIntensityRanged
from monai.utils import set_determinism
from torch.utils.data import DataLoader

from mr2ct.data import DigitVideoConfig, UnpairedDataset, build_volumetric_mnist, load_split
from mr2ct.engine import (
    CycleGANTrainer,
    LinearDecay,
    TrainingCheckpointer,
    atomic_torch_save,
    latest_checkpoint,
)
from mr2ct.networks import PatchGANDiscriminator, ResnetGenerator, init_weights


def build(size, ngf=8, blocks=2, lr=1e-3, max_epochs=1, decay=0):
    g_ab, g_ba = (init_weights(ResnetGenerator(3, 1, 1, channels=ngf, num_res_blocks=blocks)) for _ in range(2))
    d_a, d_b = (init_weights(PatchGANDiscriminator(3, 1, channels=ngf, input_size=size)) for _ in range(2))
    g_opt = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), lr=lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr=lr, betas=(0.5, 0.999))
    g_sched = torch.optim.lr_scheduler.LambdaLR(g_opt, LinearDecay(max_epochs, decay))
    return dict(g_ab=g_ab, g_ba=g_ba, d_a=d_a, d_b=d_b, g_optimizer=g_opt, d_optimizer=d_opt, g_scheduler=g_sched)


def vmnist_loader(folder, shuffle=True):
    transform = Compose(
        [ScaleIntensityRanged(["A", "B"], 0, 255, -1.0, 1.0), EnsureTyped(["A", "B"], track_meta=False)]
    )
    ds = UnpairedDataset(load_split(folder, "train", "A"), load_split(folder, "train", "B"), transform)
    return DataLoader(ds, batch_size=1, shuffle=shuffle)


def test_tiny_3d_cyclegan_beats_identity_on_volumetric_mnist(tmp_path):
    """In 400 CPU iterations (~30 s) the A->B translation gets clearly closer to the ground truth than the input."""
    folder = build_volumetric_mnist(tmp_path, DigitVideoConfig(depth=12, size=(20, 20), num_digits=400, seed=0))
    set_determinism(seed=0)
    parts = build((12, 20, 20), ngf=8, blocks=2, lr=1e-3)
    trainer = CycleGANTrainer(
        device="cpu",
        max_epochs=8,
        train_data_loader=vmnist_loader(folder),
        epoch_length=50,
        lambda_identity=0.5,
        **{k: v for k, v in parts.items() if k != "g_scheduler"},
    )
    trainer.run()
    a = torch.as_tensor(np.array(load_split(folder, "test", "A")[:32])).float() / 127.5 - 1
    b = torch.as_tensor(np.array(load_split(folder, "test", "B")[:32])).float() / 127.5 - 1
    with torch.no_grad():
        fake_b = parts["g_ab"].eval()(a)
    mse_model = torch.mean((fake_b - b) ** 2).item()
    mse_identity = torch.mean((a - b) ** 2).item()
    set_determinism(seed=None)
    assert mse_model < 0.8 * mse_identity, (mse_model, mse_identity)


def test_checkpoint_resume_restores_optimizer_scheduler_and_epoch(tmp_path, tiny_vmnist):
    torch.manual_seed(0)
    parts = build((8, 16, 16), ngf=4, blocks=1, max_epochs=3, decay=2)
    common = dict(device="cpu", train_data_loader=vmnist_loader(tiny_vmnist, shuffle=False), epoch_length=2)

    def trainer_for(p, max_epochs, checkpointer):
        # the LR schedule steps before the checkpoint is written, as in the bundles' handler lists
        handlers = [LrScheduleHandler(p["g_scheduler"], print_lr=False), checkpointer]
        return CycleGANTrainer(
            max_epochs=max_epochs,
            train_handlers=handlers,
            **common,
            **{k: v for k, v in p.items() if k != "g_scheduler"},
        )

    trainer_for(parts, 2, TrainingCheckpointer(tmp_path, parts, interval=1)).run()
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "checkpoint_4.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_2.pt", "checkpoint_4.pt"]
    saved = torch.load(latest, weights_only=True)

    torch.manual_seed(123)
    fresh = build((8, 16, 16), ngf=4, blocks=1, max_epochs=3, decay=2)
    seen = {}
    resumed = trainer_for(fresh, 3, TrainingCheckpointer(tmp_path, fresh, interval=1, resume=True))

    from ignite.engine import Events

    @resumed.on(Events.ITERATION_STARTED(once=5))
    def capture(engine):
        seen["epoch"], seen["iteration"] = engine.state.epoch, engine.state.iteration
        seen["weights_equal"] = all(torch.equal(p, saved["g_ab"][k]) for k, p in fresh["g_ab"].state_dict().items())
        seen["adam_step"] = next(iter(fresh["g_optimizer"].state.values()))["step"].item()
        seen["lr"] = fresh["g_optimizer"].param_groups[0]["lr"]

    resumed.run()
    assert seen == {
        "epoch": 3,
        "iteration": 5,
        "weights_equal": True,
        "adam_step": 4.0,
        "lr": pytest.approx(parts["g_optimizer"].param_groups[0]["lr"]),
    }
    assert resumed.state.epoch == 3 and resumed.state.iteration == 6
    assert latest_checkpoint(tmp_path).name == "checkpoint_6.pt"


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, tiny_vmnist):
    parts = build((8, 16, 16), ngf=4, blocks=1)
    with pytest.raises(FileNotFoundError, match="--resume was given but"):
        CycleGANTrainer(
            device="cpu",
            max_epochs=1,
            train_data_loader=vmnist_loader(tiny_vmnist),
            train_handlers=[TrainingCheckpointer(tmp_path / "empty", parts, resume=True)],
            **{k: v for k, v in parts.items() if k != "g_scheduler"},
        )


def test_atomic_save_never_leaves_partial_files(tmp_path):
    target = tmp_path / "model.pt"
    atomic_torch_save({"x": torch.ones(3)}, target)
    assert target.stat().st_mode & 0o044  # readable by others, like a plain torch.save

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"x": Unpicklable()}, target)
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.ones(3))  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # and no temporary file is left
