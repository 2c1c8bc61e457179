"""The structure loss (MIND), few-pair (semi-supervised) training, and the exact resume of the paired stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.utils import set_determinism
from torch.utils.data import DataLoader

from mr2ct.engine import CycleGANTrainer, EndlessLoader, MINDLoss, TrainingCheckpointer, get_method, mind_descriptor
from mr2ct.networks import PatchGANDiscriminator, ResnetGenerator, init_weights

from test_faults_training import assert_same, build, make_trainer, vmnist_loader


def blobs(shape=(8, 16, 16), seed=0) -> torch.Tensor:
    """A smooth random 3D image ``(1, 1, *shape)``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 1, *(s // 4 for s in shape), generator=g)
    return torch.nn.functional.interpolate(x, size=shape, mode="trilinear", align_corners=False)


@pytest.mark.parametrize("shape", [(8, 16, 16), (16, 16)])
def test_mind_is_contrast_independent_but_sees_structure(shape):
    x = blobs((8, *shape[-2:]))
    x = x if len(shape) == 3 else x[:, :, 0]
    loss = MINDLoss()
    assert mind_descriptor(x).shape == (1, 2 * len(shape), *shape)
    # an affine intensity change and a contrast inversion (bone dark in MR, bright in CT) keep the structure
    for same in (3 * x + 1, -x, -0.5 * x + 2):
        assert loss(x, same).item() < 1e-4
    # a non-monotonic change keeps the edges where they are (a CT's bone ring under an MR's dark band) and costs
    # less than moving the anatomy by two voxels, or replacing it by another
    folded = (x - x.mean()).abs()
    moved = torch.roll(x, shifts=2, dims=-1)
    other = blobs((8, *shape[-2:]), seed=1)
    other = other if len(shape) == 3 else other[:, :, 0]
    assert loss(x, folded) < loss(x, moved) < loss(x, other) * 1.5
    assert loss(x, moved) > 10 * loss(x, -x)
    with pytest.raises(ValueError, match="one shape"):
        loss(x, x[..., :-1])
    with pytest.raises(ValueError, match="odd"):
        MINDLoss(patch_size=2)


def test_mind_on_the_channel_mean_compares_structure_not_colour():
    white = (blobs() > 0).float().repeat(1, 3, 1, 1, 1)  # a white shape on black, RGB
    red = white.clone()
    red[:, 1:] = 0  # the same shape in red: its green and blue channels are flat
    moved = torch.roll(red, shifts=3, dims=-1)
    per_channel, mean = MINDLoss(), MINDLoss(channels="mean")
    assert mean(white, red).item() < 1e-6 < per_channel(white, red).item()
    assert mean(white, moved).item() > 0.01  # a moved shape still costs
    with pytest.raises(ValueError, match="channels must be one of"):
        MINDLoss(channels="max")


def test_mind_gradient_pulls_a_translation_onto_the_sources_structure():
    source = blobs()
    translation = torch.roll(-source, shifts=2, dims=-1).requires_grad_(True)
    optimizer = torch.optim.Adam([translation], lr=0.05)
    loss = MINDLoss()
    first = loss(source, translation).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss(source, translation).backward()
        optimizer.step()
    assert loss(source, translation).item() < 0.5 * first


def test_endless_loader_cycles_and_resumes_at_a_pass_end():
    torch.manual_seed(0)
    stream = EndlessLoader(DataLoader(list(range(5)), batch_size=2, shuffle=True))
    first = [stream.next().tolist() for _ in range(3)]  # one whole pass (2 + 2 + 1)
    assert sorted(sum(first, [])) == list(range(5)) and len(stream) == 3
    state, rng = stream.state_dict(), torch.get_rng_state()
    expected = [stream.next().tolist() for _ in range(4)]  # the next pass starts by itself
    restored = EndlessLoader(DataLoader(list(range(5)), batch_size=2, shuffle=True))
    restored.load_state_dict(state)
    torch.set_rng_state(rng)
    assert [restored.next().tolist() for _ in range(4)] == expected
    with pytest.raises(ValueError, match="at least one batch"):
        EndlessLoader([])


def paired_loader(folder, size: int = 2) -> DataLoader:
    """Registered pairs: the first ``size`` volumetric MNIST test videos in both domains (the same digit)."""
    a, b = (np.load(folder / f"test_{d}.npy")[:size] / 127.5 - 1 for d in "AB")
    items = [
        {"A": torch.as_tensor(x, dtype=torch.float32), "B": torch.as_tensor(y, dtype=torch.float32)}
        for x, y in zip(a, b)
    ]
    return DataLoader(items, batch_size=1, shuffle=True)


@pytest.mark.parametrize("method", ["3d", "random"])
def test_paired_and_structure_terms_are_trained_and_logged(tiny_vmnist, method):
    set_determinism(seed=0)
    parts = build(spatial_dims=3 if method == "3d" else 2)
    trainer = make_trainer(
        parts,
        vmnist_loader(tiny_vmnist),
        max_epochs=1,
        epoch_length=2,
        prepare_batch=get_method(method).batch_preparer(4),
        lambda_structure=1.0,
        paired_data_loader=paired_loader(tiny_vmnist),
        lambda_paired=10.0,
    )
    trainer.run()
    set_determinism(seed=None)
    out = trainer.state.output
    assert out["loss_structure"] > 0 and out["loss_paired"] > 0
    assert out["loss_g"] == pytest.approx(
        sum(
            v
            for k, v in out.items()
            if k in ("loss_g_ab", "loss_g_ba", "loss_cycle", "loss_identity", "loss_structure", "loss_paired")
        ),
        rel=1e-5,
    )
    assert trainer.state_dict()["paired_data"]["consumed"] == 2


def test_without_pairs_nothing_changes(tiny_vmnist):
    """No pairs and no structure weight: the same weights as a trainer that knows nothing of them."""
    finals = []
    for extra in ({}, {"paired_data_loader": None, "lambda_paired": 10.0, "lambda_structure": 0.0}):
        set_determinism(seed=0)
        parts = build()
        make_trainer(parts, vmnist_loader(tiny_vmnist), max_epochs=1, epoch_length=3, **extra).run()
        finals.append({k: v.state_dict() for k, v in parts.items()})
    set_determinism(seed=None)
    assert_same(*finals)


def test_pairs_teach_what_unpaired_data_cannot(tiny_vmnist):
    """Domain B is domain A with its contrast inverted, and both look alike (random smooth blobs of either sign), so
    unpaired data cannot tell the generator to invert; two registered pairs do, in the same iterations."""

    def blob_loader(seed: int, count: int, paired: bool) -> DataLoader:
        images = [blobs(seed=seed + i)[0] for i in range(count)]
        items = [{"A": x, "B": -x} if paired else {"A": x, "B": images[(i + 1) % count]} for i, x in enumerate(images)]
        return DataLoader(items, batch_size=1, shuffle=True)

    test = torch.cat([blobs(seed=100 + i) for i in range(4)])
    errors = {}
    for name, extra in (("unpaired", {}), ("paired", {"paired_data_loader": blob_loader(50, 2, paired=True)})):
        set_determinism(seed=0)
        parts = build(max_epochs=1, decay=0)
        make_trainer(
            parts, blob_loader(0, 8, paired=False), max_epochs=1, epoch_length=40, lambda_paired=50.0, **extra
        ).run()
        with torch.no_grad():
            errors[name] = torch.mean(torch.abs(parts["g_ab"].eval()(test) + test)).item()
    set_determinism(seed=None)
    assert errors["paired"] < 0.7 * errors["unpaired"], errors


@pytest.mark.parametrize("resume_at", [3, 5])  # the paired stream (3 batches per pass) mid-pass and in a new pass
def test_resume_with_a_paired_stream_is_exact(tmp_path, tiny_vmnist, resume_at):
    def trainer(parts, handlers):
        return make_trainer(
            parts,
            vmnist_loader(tiny_vmnist),
            handlers,
            max_epochs=2,
            epoch_length=4,
            paired_data_loader=paired_loader(tiny_vmnist, 3),
            lambda_structure=0.5,
        )

    set_determinism(seed=0)
    parts = build(max_epochs=2, decay=1)
    saves = tmp_path / "all"
    trainer(parts, [TrainingCheckpointer(saves, parts, iteration_interval=1, n_saved=100)]).run()
    expected = {k: v.state_dict() for k, v in parts.items()}
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / f"checkpoint_{resume_at}.pt").write_bytes((saves / f"checkpoint_{resume_at}.pt").read_bytes())
    torch.manual_seed(123)
    fresh = build(max_epochs=2, decay=1)
    trainer(fresh, [TrainingCheckpointer(killed, fresh, iteration_interval=1, resume=True)]).run()
    set_determinism(seed=None)
    assert_same(expected, {k: v.state_dict() for k, v in fresh.items()})


def test_negative_weights_are_refused():
    nets = [init_weights(ResnetGenerator(3, 1, 1, channels=4, num_res_blocks=1)) for _ in range(2)]
    nets += [init_weights(PatchGANDiscriminator(3, 1, channels=4, input_size=(8, 16, 16))) for _ in range(2)]
    opt = torch.optim.Adam(nets[0].parameters())
    for key in ("lambda_structure", "lambda_chroma", "lambda_paired"):
        with pytest.raises(ValueError, match=">= 0"):
            CycleGANTrainer("cpu", 1, [{}], *nets, opt, opt, **{key: -1.0})
