"""One device-to-host transfer per training iteration: the logged losses are those of the per-loss ``.item()``
of before, and non-finite iterations are still caught (also under bf16 autocast, with its gradient check)."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
from monai.data import DataLoader as MonaiDataLoader
from torch.overrides import TorchFunctionMode

from test_faults_training import NETWORKS, assert_same, build, fault_items, make_trainer, snapshot, volume

TRAINER = os.path.join("mr2ct", "engine", "trainer.py")
SYNCS = {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"}


class CountSyncs(TorchFunctionMode):
    """The tensor calls that copy values to the host (on CUDA each one waits for the device) made by the trainer's
    own code, as ``(function, line)`` (PyTorch's Adam reads its CPU step counters with ``.item()``: not ours)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        caller = sys._getframe(1)
        if name in SYNCS and caller.f_code.co_filename.endswith(TRAINER):
            self.calls.append((name, caller.f_lineno))
        return func(*args, **(kwargs or {}))


def recorded_trainer(**kwargs):
    """A tiny trainer whose generator and discriminator updates keep the loss tensors they return."""
    torch.manual_seed(0)
    parts = build()
    trainer = make_trainer(parts, MonaiDataLoader(fault_items(None), batch_size=1), max_epochs=1, **kwargs)
    seen = {}
    for name in ("_generator_update", "_discriminator_update"):
        method = getattr(trainer, name)

        def record(*args, _method=method):
            out = _method(*args)
            seen.update({k: v for k, v in out.items() if k.startswith("loss_")})
            return out

        setattr(trainer, name, record)
    return trainer, parts, seen


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_logged_losses_are_the_per_loss_values_in_one_transfer(amp):
    trainer, _, seen = recorded_trainer(amp=amp)
    batch = {"A": volume(0.1)[None], "B": volume(-0.1)[None]}
    with CountSyncs() as counter:
        out = trainer.train_step(batch)
    g_keys = [k for k in seen if k not in ("loss_d_a", "loss_d_b")]
    old = {k: v.item() for k, v in seen.items()} | {"loss_g": sum(seen[k] for k in g_keys).item()}
    assert {k: v for k, v in out.items() if k.startswith("loss_")} == old  # bit for bit, as .item() gave
    assert {"loss_g_ab", "loss_g_ba", "loss_cycle", "loss_identity", "loss_d_a", "loss_d_b"} <= set(old)
    assert all(type(v) is float and math.isfinite(v) for k, v in out.items() if k.startswith("loss_"))
    assert [name for name, _ in counter.calls] == ["tolist"], counter.calls


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("bad", ["A", "B"])
def test_nan_step_still_caught_and_changes_nothing(amp, bad):
    """A NaN volume: no weight, pool or random state changes, the D losses are logged as NaN, the next step
    trains; the random state after the skipped step is the one before it (as when no discriminator pass ran)."""
    trainer, parts, _ = recorded_trainer(amp=amp)
    good = {"A": volume(0.1)[None], "B": volume(-0.1)[None]}
    trainer.train_step(good)
    before, pools = snapshot(parts), (list(trainer.pool_a.images), list(trainer.pool_b.images))
    rng = torch.get_rng_state()
    out = trainer.train_step({**good, bad: volume(float("nan"))[None]})
    assert trainer.state.nonfinite_steps == 1
    assert math.isnan(out["loss_d_a"]) and math.isnan(out["loss_d_b"]) and math.isnan(out["loss_g"])
    assert_same(before, snapshot(parts))
    assert_same(pools, (trainer.pool_a.images, trainer.pool_b.images))
    assert torch.equal(rng, torch.get_rng_state())
    trainer.train_step(good)
    assert trainer.state.nonfinite_steps == 0
    after = snapshot(parts)
    for name in NETWORKS:
        assert any(not torch.equal(w, after[name][k]) for k, w in before[name].items()), name
