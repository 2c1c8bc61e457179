from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader

from mr2ct.engine import (
    METHODS,
    ClipBatch,
    CycleGANTrainer,
    ImagePool,
    LinearDecay,
    RandomFrames,
    SequentialFrames,
    adversarial_loss,
    chroma_smoothness_loss,
    clip_motion,
    get_method,
    temporal_const_loss,
    temporal_warp_loss,
)
from mr2ct.engine.losses import as_clips
from mr2ct.networks import FramewiseNetwork, PatchGANDiscriminator, ResnetGenerator, init_weights, volume_to_frames


def make_cyclegan(spatial_dims: int, size: tuple[int, ...], channels: int = 1, lr: float = 2e-4):
    torch.manual_seed(0)
    g_ab, g_ba = (
        init_weights(ResnetGenerator(spatial_dims, channels, channels, channels=4, num_res_blocks=1)) for _ in range(2)
    )
    d_a, d_b = (
        init_weights(PatchGANDiscriminator(spatial_dims, channels, channels=4, input_size=size)) for _ in range(2)
    )
    g_opt = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), lr=lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr=lr, betas=(0.5, 0.999))
    return g_ab, g_ba, d_a, d_b, g_opt, d_opt


def clip_loader(n: int, shape: tuple[int, ...], batch_size: int = 1) -> DataLoader:
    torch.manual_seed(1)
    data = [{"A": torch.rand(*shape) * 2 - 1, "B": torch.rand(*shape) * 2 - 1} for _ in range(n)]
    return DataLoader(data, batch_size=batch_size)


@pytest.mark.parametrize("method", METHODS)
def test_one_iteration_updates_all_four_networks(method):
    depth, hw = 4, (24, 24)
    spatial_dims = get_method(method).spatial_dims
    size = (depth, *hw) if spatial_dims == 3 else hw
    nets = make_cyclegan(spatial_dims, size, channels=3)  # colour clips: the chroma prior has something to hold
    g_ab, g_ba, d_a, d_b, g_opt, d_opt = nets
    before = [[p.detach().clone() for p in n.parameters()] for n in nets[:4]]
    trainer = CycleGANTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=clip_loader(2, (3, depth, *hw), batch_size=2),
        g_ab=g_ab,
        g_ba=g_ba,
        d_a=d_a,
        d_b=d_b,
        g_optimizer=g_opt,
        d_optimizer=d_opt,
        lambda_const=1.0 if method == "seq_const" else 0.0,
        lambda_warp=0.0 if method == "random" else 1.0,
        warp_mask="photometric" if method == "sequential" else "occlusion",  # both masks through the trainer
        lambda_identity=0.5,
        lambda_chroma=1.0,
        chroma_affinity="colour" if method == "random" else "intensity",  # both affinities through the trainer
        clip_depth=depth,
        prepare_batch=get_method(method).batch_preparer(3),
        epoch_length=1,
    )
    trainer.run()
    out = trainer.state.output
    for net, old in zip(nets[:4], before):
        assert all(p.requires_grad for p in net.parameters()), "no parameter may stay frozen after an iteration"
        changed = [not torch.equal(p, o) for p, o in zip(net.parameters(), old)]
        assert all(changed), f"{sum(not c for c in changed)} parameters of {type(net).__name__} did not change"
    expected = {"loss_g", "loss_g_ab", "loss_g_ba", "loss_cycle", "loss_identity", "loss_d_a", "loss_d_b"}
    assert expected <= set(out)
    assert ("loss_const" in out) == (method == "seq_const")
    assert ("loss_warp" in out) == (method != "random") and out.get("loss_warp", 1.0) > 0
    assert out["loss_chroma"] > 0
    terms = ("loss_cycle", "loss_identity", "loss_const", "loss_warp", "loss_chroma")
    assert out["loss_g"] == pytest.approx(
        sum(v for k, v in out.items() if k.startswith("loss_g_") or k in terms), rel=1e-5
    )


def _warp_trainer(warp_warmup: int, iterations: int) -> CycleGANTrainer:
    nets = make_cyclegan(3, (4, 24, 24))
    names = ("g_ab", "g_ba", "d_a", "d_b", "g_optimizer", "d_optimizer")
    return CycleGANTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=clip_loader(iterations, (1, 4, 24, 24)),
        lambda_warp=2.0,
        warp_warmup=warp_warmup,
        clip_depth=4,
        epoch_length=iterations,
        **dict(zip(names, nets)),
    )


def test_warp_warmup_ramps_the_flow_loss_linearly():
    from ignite.engine import Events

    ramped, full = _warp_trainer(warp_warmup=4, iterations=3), _warp_trainer(warp_warmup=0, iterations=1)
    weights, losses = [], []
    ramped.add_event_handler(Events.ITERATION_COMPLETED, lambda e: weights.append(e.warp_weight()))
    ramped.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss_warp"]))
    ramped.run()
    full.run()
    assert weights == pytest.approx([0.5, 1.0, 1.5])  # lambda_warp 2 * i / 4
    # same networks, same first batch: the first iteration's loss is the full one scaled by 1 / warp_warmup
    assert losses[0] == pytest.approx(full.state.output["loss_warp"] / 4, rel=1e-5)
    ramped.state.iteration = 40
    assert ramped.warp_weight() == 2.0 and full.warp_weight() == 2.0
    with pytest.raises(ValueError, match="warp_warmup must be >= 0"):
        _warp_trainer(warp_warmup=-1, iterations=1)


def test_batch_formation_modes():
    a = torch.arange(2 * 1 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 1, 3, 2, 2)
    b = -a
    batch = {"A": a, "B": b}
    ra, rb = ClipBatch()(batch)
    assert torch.equal(ra, a) and torch.equal(rb, b)

    fa, fb = SequentialFrames()(batch)
    assert fa.shape == (6, 1, 2, 2)
    assert [torch.equal(fa[i], a[i // 3, :, i % 3]) for i in range(6)] == [True] * 6  # clip by clip, in order

    torch.manual_seed(0)
    sa, sb = RandomFrames(num_frames=4)(batch)
    assert sa.shape == (4, 1, 2, 2) and sb.shape == (4, 1, 2, 2)
    all_frames = SequentialFrames()(batch)[0]
    idx = [next(i for i in range(6) if torch.equal(all_frames[i], f)) for f in sa]
    assert len(set(idx)) == 4  # distinct frames, drawn from both clips' frames
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        seen |= {int(f.flatten()[0]) // 4 for f in RandomFrames(num_frames=2)(batch)[0]}
    assert seen == set(range(6))  # every frame of every clip can be drawn

    with pytest.raises(ValueError, match="fewer than"):
        RandomFrames(num_frames=7)(batch)
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        ClipBatch()({"A": a[0], "B": b[0]})


def test_crop_depth_cuts_each_clip_to_a_random_window():
    """crop_depth: every clip of a batch becomes consecutive frames of itself, windows drawn per clip and domain,
    every start reachable; the frame-wise preparers see the cropped frames; too long a window is refused."""
    a = torch.arange(3 * 1 * 6, dtype=torch.float32).reshape(3, 1, 6, 1, 1).expand(3, 1, 6, 2, 2).contiguous()
    batch = {"A": a, "B": a + 100}
    starts: set[tuple[int, ...]] = set()
    for seed in range(30):
        torch.manual_seed(seed)
        ca, cb = ClipBatch(crop_depth=4)(batch)
        assert ca.shape == (3, 1, 4, 2, 2) and cb.shape == (3, 1, 4, 2, 2)
        first = ca[:, 0, :, 0, 0]
        assert torch.equal(first - first[:, :1], torch.arange(4.0).expand(3, 4))  # consecutive frames
        assert torch.equal(first[:, 0] // 6, torch.arange(3.0))  # clip i's window comes from clip i
        starts.add(tuple(int(v) % 6 for v in first[:, 0]))
        assert torch.all(cb[:, 0, :, 0, 0] >= 100)
    assert {s for row in starts for s in row} == {0, 1, 2} and len({row[0] for row in starts}) == 3
    assert any(len(set(row)) > 1 for row in starts)  # clips of one batch get their own windows
    assert SequentialFrames(crop_depth=2)(batch)[0].shape == (6, 1, 2, 2)
    assert RandomFrames(num_frames=5, crop_depth=2)(batch)[0].shape == (5, 1, 2, 2)
    assert get_method("3d").batch_preparer(None, 4).crop_depth == 4
    with pytest.raises(ValueError, match="crop_depth=7 is longer than the loaded clips"):
        ClipBatch(crop_depth=7)(batch)
    with pytest.raises(ValueError, match="crop_depth must be positive"):
        ClipBatch(crop_depth=0)


def test_flip_mirrors_whole_clips_left_right_at_random():
    """train_flip: each clip is either itself or its mirror image along W (all its frames alike), drawn per clip
    and domain, both outcomes reached; the frame-wise preparers see the mirrored frames; off, nothing changes."""
    torch.manual_seed(0)
    a = torch.rand(8, 1, 3, 2, 5)
    batch = {"A": a, "B": a + 10}
    outcomes = []
    for seed in range(5):
        torch.manual_seed(seed)
        fa, fb = ClipBatch(flip=True)(batch)
        mirrored = [bool(torch.equal(x, y.flip(-1))) for x, y in zip(fa, a)]
        assert all(m or torch.equal(x, y) for m, x, y in zip(mirrored, fa, a))
        assert all(torch.equal(x, y) or torch.equal(x, y.flip(-1)) for x, y in zip(fb, a + 10))
        outcomes += mirrored
    assert 0 < sum(outcomes) < len(outcomes)
    torch.manual_seed(0)
    frames = SequentialFrames(flip=True)(batch)[0]
    torch.manual_seed(0)
    assert torch.equal(frames, volume_to_frames(ClipBatch(flip=True)(batch)[0]))
    assert torch.equal(ClipBatch()(batch)[0], a)
    assert get_method("random").batch_preparer(4, None, True).flip


def test_method_registry():
    """Each method's network dimensions, batch, const-loss default and translator; unknown names are refused."""
    assert [m.spatial_dims for m in METHODS.values()] == [3, 2, 2, 2]
    assert [get_method(m).lambda_const > 0 for m in METHODS] == [False, False, False, True]
    with pytest.raises(ValueError, match="unknown method 'cnn'; choose one of 3d, random, sequential, seq_const"):
        get_method("cnn")
    with pytest.raises(ValueError, match="frames_per_batch"):
        get_method("random").batch_preparer()
    assert isinstance(get_method("seq_const").batch_preparer(), SequentialFrames)
    assert type(get_method("3d").batch_preparer()) is ClipBatch
    assert get_method("random").frames_per_batch(16) == 16 and get_method("sequential").frames_per_batch(16) is None
    assert get_method("random").clips_per_batch > 1  # random frames are drawn from several clips
    net = torch.nn.Conv2d(1, 1, 1)
    assert get_method("3d").translator(net) is net
    assert isinstance(get_method("random").translator(net), FramewiseNetwork)


def test_const_loss_hand_made_example():
    # one video of 3 frames of 2 pixels: diffs (1, 1) then (2, 0) -> mean squares 1 and 2 -> sum 3
    frames = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 1.0]]).reshape(3, 1, 1, 2)
    assert temporal_const_loss(frames, depth=3).item() == pytest.approx(3.0)
    two_videos = torch.cat([frames, torch.zeros(3, 1, 1, 2)])  # second video constant -> 0
    assert temporal_const_loss(two_videos, depth=3).item() == pytest.approx(1.5)
    with pytest.raises(ValueError):
        temporal_const_loss(frames, depth=2)


def moving_blob(depth: int = 6, size: int = 32, step: tuple[float, float] = (1.5, 1.0)) -> torch.Tensor:
    """``(1, 1, depth, size, size)`` clip on [0, 1] of a Gaussian blob moving ``step`` (dx, dy) pixels a frame."""
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    frames = [torch.exp(-((xs - 10 - step[0] * t) ** 2 + (ys - 12 - step[1] * t) ** 2) / 18) for t in range(depth)]
    return torch.stack(frames)[None, None]


def test_warp_loss_is_zero_along_the_motion_and_measures_flicker():
    """A clip that moves as its input moves costs ~0; a translation whose brightness alternates by 0.2 between
    frames costs 0.2 (L1 over the visible pixels); the input's value range does not change its motion."""
    clip = moving_blob()
    grids, visible = clip_motion(clip * 2 - 1)  # the input on [-1, 1], as the networks see it
    assert grids.shape == (5, 32, 32, 2) and visible.shape == (1, 1, 5, 32, 32)
    assert 0.5 < visible.mean() < 1  # most pixels visible, the border the blob leaves behind masked
    assert torch.equal(clip_motion(clip * 255)[1], visible)
    weights = clip_motion(clip * 2 - 1, mask="photometric")[1]  # Lai et al.'s training mask
    assert 0.9 < weights.mean() <= 1  # the input is carried by its flow almost everywhere
    assert torch.allclose(clip_motion(clip * 255, mask="photometric")[1], weights, atol=1e-5)
    assert temporal_warp_loss(clip, grids, visible).item() < 0.005
    flicker = clip + torch.tensor([0.0, 0.2] * 3).view(1, 1, 6, 1, 1)
    assert temporal_warp_loss(flicker, grids, visible).item() == pytest.approx(0.2, abs=0.01)
    still = clip[:, :, :1].expand_as(clip)  # a translation that does not move with its input
    assert temporal_warp_loss(still, grids, visible).item() > 0.02


def test_warp_loss_lets_the_translation_follow_a_change_of_its_input():
    """Where the input itself changes along its motion (a region whose colour switches, as a label does), the
    photometric mask is ~0: a translation that switches with it costs ~0, and only the still region is held. The
    forward-backward check (``mask="occlusion"``) holds the switch too."""
    clip = torch.zeros(1, 3, 4, 16, 16)
    clip[:, 0, :, 4:12, 4:12] = 1.0  # a still red square ...
    clip[:, :, 2:, 4:12, 4:12] = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1, 1)  # ... blue from frame 2 on
    grids, visible = clip_motion(clip, mask="photometric")
    assert visible[0, 0, 1, 4:12, 4:12].max() < 0.01  # the switch is not asked to be held
    assert visible[0, 0, 0, 4:12, 4:12].min() > 0.99 and visible[0, 0, 1, :2, :2].min() > 0.99
    assert temporal_warp_loss(clip, grids, visible).item() < 0.01
    held_red = clip.clone()
    held_red[:, :, 2:] = clip[:, :, :1]  # the translation that ignores the switch pays nothing either
    assert temporal_warp_loss(held_red, grids, visible).item() < 0.01
    flicker = clip + torch.tensor([0.0, 0.3, 0.0, 0.3]).view(1, 1, 4, 1, 1)  # flicker in the background still costs
    assert temporal_warp_loss(flicker, grids, visible).item() > 0.2
    # the forward-backward check sees no motion there, so it asks the translation to hold the old colour
    grids, checked = clip_motion(clip)
    assert set(checked.unique().tolist()) <= {0.0, 1.0} and checked[0, 0, 1, 4:12, 4:12].min() == 1
    assert temporal_warp_loss(clip, grids, checked).item() > 0.05
    with pytest.raises(ValueError, match="unknown warp mask 'edges'"):
        clip_motion(clip, mask="edges")


def test_warp_loss_teaches_a_steady_colour():
    """Minimising the warp loss alone over per-frame colour offsets makes them equal (the colour of the moving
    object stops wandering), from offsets spread over 0.6."""
    clip = moving_blob(depth=4).expand(1, 3, 4, 32, 32)
    motion = clip_motion(clip)
    offsets = torch.nn.Parameter(torch.tensor([0.0, 0.6, 0.2, 0.4]).view(1, 1, 4, 1, 1).repeat(1, 3, 1, 1, 1))
    optimizer = torch.optim.Adam([offsets], lr=0.02)
    for _ in range(200):
        optimizer.zero_grad()
        temporal_warp_loss(clip + offsets, *motion).backward()
        optimizer.step()
    assert (offsets.amax(dim=2) - offsets.amin(dim=2)).max().item() < 0.05


def _two_squares() -> torch.Tensor:
    """A white 8x8 square beside a grey one on black, as an input on [-1, 1]: (1, 3, 16, 24)."""
    image = -torch.ones(1, 3, 16, 24)
    image[..., 4:12, 2:10] = 1.0
    image[..., 4:12, 14:22] = 0.0
    return image


def _paint(image: torch.Tensor, left: tuple[float, ...], right: tuple[float, ...]) -> torch.Tensor:
    """``image`` with its left square's pixels in colour ``left`` and its right square's in ``right``."""
    out = image.clone()
    out[..., 4:12, 2:10] = torch.tensor(left).view(1, 3, 1, 1)
    out[..., 4:12, 14:22] = torch.tensor(right).view(1, 3, 1, 1)
    return out


def test_chroma_prior_asks_one_colour_where_the_input_is_flat():
    """One colour per flat input region costs nothing, whatever the colours; a colour change inside a region costs
    its chroma step times the length of the seam (over the number of neighbour pairs along that axis); a change
    that follows an input edge costs ~0; grey output and one-channel translations cost 0."""
    source = _two_squares()
    red, blue = (1.0, -1.0, -1.0), (-1.0, -1.0, 1.0)
    # two colours on two regions: the change sits on input edges (white-black, grey-black), ~free
    assert chroma_smoothness_loss(source, _paint(source, red, blue)).item() < 1e-4
    assert chroma_smoothness_loss(source, source).item() == 0.0  # grey output has no chroma
    assert chroma_smoothness_loss(source, source[:, :1]).item() == 0.0
    split = _paint(source, red, blue)
    split[..., 4:12, 6:10] = torch.tensor(blue).view(1, 3, 1, 1)  # the left square half red, half blue
    step = sum(abs(a - b) for a, b in zip((4 / 3, -2 / 3, -2 / 3), (-2 / 3, -2 / 3, 4 / 3)))  # red -> blue chroma
    expected = 8 * step / (3 * 16 * 23)  # 8 seam pairs among the 16 x 23 horizontal ones, over 3 channels
    assert chroma_smoothness_loss(source, split).item() == pytest.approx(expected, rel=1e-4)
    clips = torch.stack([source, split], dim=2)  # (N, C, T, H, W): each frame on its own
    assert chroma_smoothness_loss(torch.stack([source] * 2, dim=2), clips).item() == pytest.approx(
        expected / 2, rel=1e-4
    )
    with pytest.raises(ValueError, match="one size"):
        chroma_smoothness_loss(source, source[..., :8])


def test_chroma_prior_with_a_colour_affinity_keeps_regions_of_one_brightness_apart():
    """A red and a green square of one grey level side by side: by grey level they are one flat region, so a
    translation that labels them in two colours pays for the seam; by colour the seam is an input edge and costs
    ~0. On a grey input the two affinities agree."""
    source = -torch.ones(1, 3, 8, 16)
    source[:, :, 2:6, 2:8] = torch.tensor([0.6, -0.6, -0.6]).view(1, 3, 1, 1)  # red, mean -0.2
    source[:, :, 2:6, 8:14] = torch.tensor([-0.6, 0.6, -0.6]).view(1, 3, 1, 1)  # green, mean -0.2
    labels = -torch.ones(1, 3, 8, 16)
    labels[:, :, 2:6, 2:8] = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    labels[:, :, 2:6, 8:14] = torch.tensor([-1.0, -1.0, 1.0]).view(1, 3, 1, 1)
    by_grey = chroma_smoothness_loss(source, labels).item()
    by_colour = chroma_smoothness_loss(source, labels, affinity="colour").item()
    assert by_grey > 0.01 and by_colour < 1e-4
    grey = _two_squares()
    split = _paint(grey, (1.0, -1.0, -1.0), (-1.0, -1.0, 1.0))
    split[..., 4:12, 6:10] = torch.tensor([-1.0, -1.0, 1.0]).view(1, 3, 1, 1)
    assert chroma_smoothness_loss(grey, split, affinity="colour").item() == pytest.approx(
        chroma_smoothness_loss(grey, split).item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="unknown affinity 'hue'"):
        chroma_smoothness_loss(source, labels, affinity="hue")


def test_chroma_prior_teaches_one_colour_across_a_region():
    """Minimising the prior alone over a two-coloured square makes it one colour, and leaves the other square's
    different colour alone (the input edge between them carries no weight)."""
    source = _two_squares()
    start = _paint(source, (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0))
    start[..., 4:12, 6:10] = torch.tensor([-1.0, -1.0, 1.0]).view(1, 3, 1, 1)
    colours = torch.nn.Parameter(start.clone())
    optimizer = torch.optim.Adam([colours], lr=0.02)
    for _ in range(300):
        optimizer.zero_grad()
        chroma_smoothness_loss(source, colours).backward()
        optimizer.step()
    left = colours.detach()[0, :, 4:12, 2:10]
    chroma = left - left.mean(dim=0, keepdim=True)
    assert (chroma.amax(dim=(1, 2)) - chroma.amin(dim=(1, 2))).max().item() < 0.1
    right = colours.detach()[0, :, 4:12, 14:22]
    assert right[1].mean() > right[0].mean() + 1  # still green, not pulled to the left square's colour


def test_clips_from_sequential_frames():
    clips = torch.rand(2, 3, 4, 8, 8)
    assert torch.equal(as_clips(volume_to_frames(clips), depth=4), clips)
    assert as_clips(clips) is clips
    with pytest.raises(ValueError, match="frames of whole clips in order"):
        as_clips(volume_to_frames(clips), depth=3)


def test_adversarial_losses():
    logits = torch.zeros(2, 1, 3, 3)
    assert adversarial_loss("lsgan")(logits, target_is_real=True, for_discriminator=True).item() == pytest.approx(1.0)
    assert adversarial_loss("lsgan")(logits, target_is_real=False, for_discriminator=True).item() == pytest.approx(0.0)
    assert adversarial_loss("bce")(logits, target_is_real=True, for_discriminator=False).item() == pytest.approx(
        0.6931, abs=1e-4
    )
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        adversarial_loss("wgan")


def test_image_pool():
    torch.manual_seed(0)
    pool = ImagePool(pool_size=2)
    first = torch.ones(2, 1, 4)
    assert torch.equal(pool.query(first), first)  # filling: returns the new images
    second = torch.full((50, 1, 4), 2.0)
    out = pool.query(second)
    assert out.shape == second.shape
    assert {1.0, 2.0} <= set(out[:, 0, 0].tolist())  # some old fakes come back, most are new
    assert torch.equal(ImagePool(0).query(first), first)
    with pytest.raises(ValueError):
        ImagePool(-1)


def test_linear_decay_schedule():
    f = LinearDecay(total=10, decay=4)
    assert [f(i) for i in range(6)] == [1.0] * 6
    assert [round(f(i), 3) for i in range(6, 10)] == [0.8, 0.6, 0.4, 0.2]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    for _ in range(7):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.6)
    with pytest.raises(ValueError):
        LinearDecay(total=5, decay=6)


def test_trainer_rejects_bad_settings():
    nets = make_cyclegan(3, (4, 24, 24))
    kwargs = dict(
        device="cpu",
        train_data_loader=clip_loader(1, (1, 4, 24, 24)),
        g_ab=nets[0],
        g_ba=nets[1],
        d_a=nets[2],
        d_b=nets[3],
        g_optimizer=nets[4],
        d_optimizer=nets[5],
    )
    with pytest.raises(ValueError, match="max_epochs"):
        CycleGANTrainer(max_epochs=0, **kwargs)
    with pytest.raises(ValueError, match="clip_depth"):
        CycleGANTrainer(max_epochs=1, lambda_const=1.0, **kwargs)
    with pytest.raises(ValueError, match="lambda_warp > 0 needs frames in temporal order"):
        CycleGANTrainer(max_epochs=1, lambda_warp=1.0, prepare_batch=RandomFrames(4), **kwargs)
    with pytest.raises(ValueError, match="unknown warp_mask 'edges'"):
        CycleGANTrainer(max_epochs=1, warp_mask="edges", **kwargs)
    with pytest.raises(ValueError, match="unknown chroma_affinity 'hue'"):
        CycleGANTrainer(max_epochs=1, chroma_affinity="hue", **kwargs)
    with pytest.raises(ValueError, match=">= 0"):
        CycleGANTrainer(max_epochs=1, lambda_cycle=-1.0, **kwargs)
    with pytest.raises(ValueError, match=">= 0"):
        CycleGANTrainer(max_epochs=1, lambda_cycle=(10.0, -1.0), **kwargs)
    with pytest.raises(ValueError, match="one number or two"):
        CycleGANTrainer(max_epochs=1, lambda_cycle=(10.0, 5.0, 1.0), **kwargs)


def test_framewise_translator_used_for_2d_inference():
    g = ResnetGenerator(2, 1, 1, channels=4, num_res_blocks=1)
    assert FramewiseNetwork(g)(torch.randn(1, 1, 5, 16, 16)).shape == (1, 1, 5, 16, 16)


@pytest.mark.parametrize("lambda_cycle", [10.0, (10.0, 2.0), (0.0, 3.0)])
def test_generator_update_by_half_cycles_matches_the_joint_loss(lambda_cycle):
    """Backpropagating the two half cycles one after the other gives the gradients of the summed loss, with one
    cycle weight for both cycles or one per cycle (the identity term of each half scaled by its cycle's)."""
    depth, hw = 4, (16, 16)
    g_ab, g_ba, d_a, d_b, g_opt, d_opt = make_cyclegan(3, (depth, *hw))
    trainer = CycleGANTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=clip_loader(1, (1, depth, *hw)),
        g_ab=g_ab,
        g_ba=g_ba,
        d_a=d_a,
        d_b=d_b,
        g_optimizer=g_opt,
        d_optimizer=torch.optim.SGD(itertools.chain(d_a.parameters(), d_b.parameters()), lr=0),
        lambda_cycle=lambda_cycle,
        lambda_identity=0.5,
    )
    trainer.state.device = "cpu"
    a, b = torch.rand(1, 1, depth, *hw) * 2 - 1, torch.rand(1, 1, depth, *hw) * 2 - 1
    generators = list(g_ab.parameters()) + list(g_ba.parameters())

    adv = trainer.adversarial_loss_fn
    lambda_a, lambda_b = (lambda_cycle, lambda_cycle) if isinstance(lambda_cycle, float) else lambda_cycle
    fake_b, fake_a = g_ab(a), g_ba(b)
    joint = (
        adv(d_b(fake_b), target_is_real=True, for_discriminator=False)
        + adv(d_a(fake_a), target_is_real=True, for_discriminator=False)
        + lambda_a * (g_ba(fake_b) - a).abs().mean()
        + lambda_b * (g_ab(fake_a) - b).abs().mean()
        + 0.5 * (lambda_a * (g_ba(a) - a).abs().mean() + lambda_b * (g_ab(b) - b).abs().mean())
    )
    expected = torch.autograd.grad(joint, generators)

    g_opt.step = lambda: None  # keep the gradients and weights for the comparison
    out = trainer._generator_update(a, b)
    for p, g in zip(generators, expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
    total = sum(v for k, v in out.items() if k.startswith("loss_"))
    assert float(total) == pytest.approx(joint.detach().item(), rel=1e-5)
