"""GTA segmentation <-> video data: video I/O, the procedural driving scene, VIPER / video sources, clips."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mr2ct.data import driving_scene, gta, load_split, viper
from mr2ct.data.driving_scene import DrivingSceneConfig, render_sequence
from mr2ct.data.gta import (
    GTAClipConfig,
    build_gta_clips,
    build_gta_validation_clips,
    clip_motion,
    export_videos,
    grayscale,
    read_video_sequence,
    read_viper_sequence,
)
from mr2ct.data.viper import (
    VIPER_CLASSES,
    class_id,
    decode_labels,
    encode_labels,
    parse_sequences,
    write_viper_sequence,
)
from mr2ct.io.video import VideoError, read_frame_folder, read_video, write_video

SKY, ROAD, SIDEWALK = class_id("sky"), class_id("road"), class_id("sidewalk")
VEHICLES = [class_id(n) for n in ("car", "van", "bus", "truck")]


def _moving_texture(speed: int, frames: int, size=(24, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth texture panning ``speed`` px/frame, and labels (a sky band above road)."""
    rng = np.random.default_rng(0)
    h, w = size
    canvas = ndimage.gaussian_filter(rng.uniform(0, 255, (h, w + speed * frames, 3)), (6, 6, 0))
    canvas = np.clip((canvas - canvas.min()) / np.ptp(canvas) * 255, 0, 255).astype(np.uint8)
    rgb = np.stack([canvas[:, speed * t : speed * t + w] for t in range(frames)])
    labels = np.full((frames, h, w), ROAD, dtype=np.uint8)
    labels[:, : h // 3] = SKY
    return rgb, labels


def _grating(speed: int, frames: int, size=(24, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A colour grating of one period per frame width panning ``speed`` px/frame: every pair of frames differs
    by the same amount, which grows with the speed (up to half a period)."""
    h, w = size
    x = np.arange(w)[None, :] + speed * np.arange(frames)[:, None]  # (T, W)
    rgb = 128 + 90 * np.sin(2 * np.pi * x[..., None] / w + np.array([0.0, 2.0, 4.0]))  # (T, W, 3)
    rgb = np.repeat(np.rint(rgb).astype(np.uint8)[:, None], h, axis=1)
    labels = np.full((frames, h, w), ROAD, dtype=np.uint8)
    labels[:, : h // 3] = SKY
    return rgb, labels


def _write_viper(root: Path, sequences: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    for name, (rgb, labels) in sequences.items():
        write_viper_sequence(root, name, rgb, labels)
    return root


# ------------------------------------------------------------------------------------------------ video I/O


def test_video_roundtrip_odd_size_and_frame_step(tmp_path):
    rgb, _ = _moving_texture(1, 10, size=(23, 41))
    path = write_video(tmp_path / "clip.mp4", rgb, fps=10)
    video = read_video(path)
    assert video.shape == (10, 24, 42, 3)  # padded to even sizes
    assert np.abs(video[:, :23, :41].astype(int) - rgb).mean() < 4
    assert read_video(path, frame_step=3).shape[0] == 4
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]  # no temporary file left behind


def test_video_errors_name_file_and_frame(tmp_path):
    with pytest.raises(VideoError, match="missing.mp4: no such file"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("not a video", encoding="utf-8")
    with pytest.raises(VideoError, match="text.mp4: not a readable video"):
        read_video(tmp_path / "text.mp4")
    data = write_video(tmp_path / "ok.mp4", _moving_texture(1, 20)[0]).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"cut.mp4: frame \d+: .*truncated"):
        read_video(tmp_path / "cut.mp4")
    with pytest.raises(ValueError, match="zero frames"):
        write_video(tmp_path / "empty.mp4", np.zeros((0, 8, 8, 3), np.uint8))
    assert not (tmp_path / "empty.mp4").exists() and not list(tmp_path.glob(".empty*"))

    frames = tmp_path / "frames"
    frames.mkdir()
    with pytest.raises(VideoError, match="zero frames"):
        read_frame_folder(frames)
    for i, size in enumerate([(8, 8), (8, 8), (6, 8)]):
        Image.fromarray(np.full((*size, 3), i, np.uint8)).save(frames / f"f_{i}.png")
    with pytest.raises(VideoError, match=r"f_2.png: frame 2: .*different sizes"):
        read_frame_folder(frames)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frames / "f_2.png")
    Image.fromarray(np.full((8, 8, 3), 10, np.uint8)).save(frames / "f_10.png")  # natural order: after f_2
    assert list(read_frame_folder(frames)[:, 0, 0, 0]) == [0, 1, 0, 10]


# ------------------------------------------------------------------------------------------------ labels


def test_palette_decode_encode_and_sequence_specs():
    assert len(VIPER_CLASSES) == 32 and VIPER_CLASSES[3] == ("road", (128, 64, 128))
    ids = np.arange(32, dtype=np.uint8).reshape(4, 8)
    decoded = decode_labels(encode_labels(ids))
    assert np.array_equal(decoded[ids != class_id("train")], ids[ids != class_id("train")])
    assert decoded[ids == class_id("train")] == class_id("van")  # the two share a colour in VIPER's table
    bad = encode_labels(np.full((4, 4), ROAD, np.uint8))
    bad[0, :2] = (1, 2, 3)
    with pytest.raises(VideoError, match=r"x.png: frame 7: 2 of 16 pixels .* \(1, 2, 3\)"):
        decode_labels(bad, path="x.png", frame=7)
    assert parse_sequences("001-004, 044-049, 051, 066-069") == viper.GTA_SEQUENCES
    assert len(viper.GTA_SEQUENCES) == 15 and viper.GTA_SEQUENCES[4] == "044"


# ------------------------------------------------------------------------------------------------ driving scene


def test_driving_scene_labels_are_sane():
    config = DrivingSceneConfig(size=(24, 40), frames=12, sequences=tuple(f"{i:03d}" for i in range(6)))
    moved = 0
    for name in config.sequences:
        rgb, labels = render_sequence(config.sequence_rng(name), config)
        assert rgb.shape == (12, 24, 40, 3) and labels.shape == (12, 24, 40) and rgb.dtype == np.uint8
        assert labels.max() < len(VIPER_CLASSES)
        assert np.bincount(labels[:, 0].ravel()).argmax() == SKY  # sky at the top
        assert np.bincount(labels[:, -1].ravel()).argmax() == ROAD  # road at the bottom
        assert not (labels[:, : 24 * 2 // 5] == ROAD).any() and not (labels[:, 12:] == SKY).any()
        assert (labels == SIDEWALK).any()
        vehicles = np.isin(labels, VEHICLES)
        assert vehicles.reshape(12, -1).any(axis=1).mean() > 0.5  # other vehicles in most frames
        moved += (vehicles[0] != vehicles[-1]).any()
        assert 20 < rgb.mean() < 235 and rgb.std() > 10
    assert moved >= 4  # and they move


def test_driving_scene_faster_camera_moves_more():
    config = DrivingSceneConfig(size=(24, 40), frames=8, sequences=("001",), num_cars=0, num_pedestrians=0)
    slow, _ = render_sequence(config.sequence_rng("001"), config, speed=1.0)
    fast, _ = render_sequence(config.sequence_rng("001"), config, speed=15.0)
    assert clip_motion(np.moveaxis(slow, -1, 0)) < clip_motion(np.moveaxis(fast, -1, 0))


# ------------------------------------------------------------------------------------------------ sources


def test_viper_folder_and_videos_give_the_same_clips(tmp_path):
    config = DrivingSceneConfig(size=(48, 80), frames=12, sequences=("001", "002", "003"))
    viper = _write_viper(
        tmp_path / "viper", {n: render_sequence(config.sequence_rng(n), config) for n in config.sequences}
    )
    videos = export_videos(viper, tmp_path / "videos")
    assert {p.name for p in videos.iterdir()} == {
        "001.mp4",
        "001_labels",
        "002.mp4",
        "002_labels",
        "003.mp4",
        "003_labels",
    }
    clips = GTAClipConfig(depth=4, size=(24, 40), sequences="001-003", train_fraction=0.6)
    a, b = build_gta_clips(tmp_path / "out", viper, clips), build_gta_clips(tmp_path / "out", videos, clips)
    assert a != b
    meta_a, meta_b = (json.loads((f / "meta.json").read_text(encoding="utf-8")) for f in (a, b))
    assert meta_a["sequences"] == meta_b["sequences"] and meta_a["clips"]["train_A"] == meta_b["clips"]["train_A"]
    for split in ("train", "test"):  # segmentation colours: exact
        assert np.array_equal(load_split(a, split, "A"), load_split(b, split, "A"))
    assert np.array_equal(np.load(a / "test_labels.npy"), np.load(b / "test_labels.npy"))
    for split in ("train", "test"):  # RGB: within the codec's tolerance
        diff = np.abs(load_split(a, split, "B").astype(int) - load_split(b, split, "B"))
        assert diff.mean() < 5, (split, diff.mean())
    frames, labels = read_viper_sequence(viper, "002", size=(24, 40), frame_step=2)
    assert frames.shape == (6, 24, 40, 3) and labels.shape == (6, 24, 40)


def test_corrupt_frame_and_bad_colour_are_reported_and_nothing_is_left(tmp_path):
    rgb, labels = _moving_texture(1, 6)
    viper = _write_viper(tmp_path / "viper", {"001": (rgb, labels), "002": (rgb, labels)})
    frame = viper / "train" / "img" / "002" / "002_00003.png"
    frame.write_bytes(frame.read_bytes()[:200])
    out = tmp_path / "out"
    clips = GTAClipConfig(depth=2, size=(24, 40), sequences=None)
    with pytest.raises(VideoError, match=r"002_00003.png: frame 3: cannot decode"):
        build_gta_clips(out, viper, clips)
    assert list(out.iterdir()) == []  # the failed build left neither a data set nor a temporary folder

    _write_viper(viper, {"002": (rgb, labels)})
    cls = viper / "train" / "cls" / "001" / "001_00004.png"
    colours = np.array(Image.open(cls).convert("RGB"))
    colours[5:7, 5:8] = (250, 1, 2)
    Image.fromarray(colours).save(cls)
    with pytest.raises(VideoError, match=r"001_00004.png: frame 4: 6 of 960 pixels .*\(250, 1, 2\)"):
        build_gta_clips(out, viper, clips)


def test_lossy_label_video_is_refused_lossless_one_accepted(tmp_path):
    rgb, labels = _moving_texture(1, 6)
    write_video(tmp_path / "clip.mp4", rgb)
    write_video(tmp_path / "clip_labels.mp4", encode_labels(labels))
    with pytest.raises(VideoError, match="clip_labels.mp4: frame 0: .*outside the palette.*lossy"):
        read_video_sequence(tmp_path / "clip.mp4")
    with pytest.raises(VideoError, match="no labels beside it"):
        read_video_sequence(tmp_path / "clip_labels.mp4")
    with av.open(str(tmp_path / "lossless.mkv"), "w") as container:  # FFV1 keeps the colours exactly
        stream = container.add_stream("ffv1", rate=15)
        stream.width, stream.height, stream.pix_fmt = 40, 24, "bgr0"
        for frame in encode_labels(labels):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="bgr0")))
        container.mux(stream.encode())
    frames, decoded = read_video_sequence(tmp_path / "clip.mp4", tmp_path / "lossless.mkv")
    assert np.array_equal(decoded, labels) and frames.shape == (6, 24, 40, 3)
    (tmp_path / "short_labels").mkdir()
    for i, ids in enumerate(labels[:5]):
        Image.fromarray(encode_labels(ids)).save(tmp_path / "short_labels" / f"{i}.png")
    with pytest.raises(VideoError, match=r"clip.mp4: frame 5: has more frames than .*short_labels"):
        read_video_sequence(tmp_path / "clip.mp4", tmp_path / "short_labels", frame_step=2)


# ------------------------------------------------------------------------------------------------ clips


@pytest.fixture(scope="module")
def speed_source(tmp_path_factory) -> Path:
    """Eight sequences panning at known speeds (sequence ``00k`` at k px/frame), 12 frames each."""
    root = tmp_path_factory.mktemp("speeds")
    return _write_viper(root, {f"{k:03d}": _grating(k, 12) for k in range(1, 9)})


def test_split_by_sequence_unpaired_train_and_slow_subset(speed_source, tmp_path):
    config = GTAClipConfig(depth=4, size=(24, 40), sequences="001-008", train_fraction=0.5, seed=3)
    folder = build_gta_clips(tmp_path, speed_source, config)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    train, test = meta["sequences"]["train"], meta["sequences"]["test"]
    assert len(train) == len(test) == 4 and not set(train) & set(test)
    assert {c["sequence"] for c in meta["clips"]["train_A"] + meta["clips"]["train_B"]} <= set(train)
    assert {c["sequence"] for c in meta["clips"]["test"]} == set(test)
    train_a, train_b = ({(c["sequence"], c["start_frame"]) for c in meta["clips"][k]} for k in ("train_A", "train_B"))
    assert not train_a & train_b and len(train_a) + len(train_b) == 12  # disjoint halves of the training clips

    test_b = load_split(folder, "test", "B")
    assert test_b.shape == (12, 3, 4, 24, 40) and load_split(folder, "train", "A").shape == (6, 3, 4, 24, 40)
    labels = np.load(folder / "test_labels.npy")
    assert np.array_equal(encode_labels(labels), np.moveaxis(load_split(folder, "test", "A"), 1, -1))

    motion = np.array([c["motion"] for c in meta["clips"]["test"]])
    assert np.allclose(motion, [clip_motion(c) for c in test_b], atol=1e-3)
    speeds = np.array([int(c["sequence"]) for c in meta["clips"]["test"]])
    assert (np.diff(motion[np.argsort(speeds, kind="stable")]) >= 0).all()  # motion grows with camera speed
    slow = np.load(folder / "slow.npy")
    slowest = sorted(test, key=int)[:2]  # the two slowest test sequences' six clips
    assert sorted(slow) == [i for i, c in enumerate(meta["clips"]["test"]) if c["sequence"] in slowest]


def test_frame_step_and_stride_give_the_expected_clips(tmp_path):
    frames = np.arange(20, dtype=np.uint8)[:, None, None, None] * 10 * np.ones((1, 24, 40, 3), np.uint8)
    labels = np.full((20, 24, 40), ROAD, np.uint8)
    source = _write_viper(tmp_path / "viper", {f"{k:03d}": (frames, labels) for k in range(4)})
    config = GTAClipConfig(depth=4, size=(24, 40), stride=3, frame_step=2, sequences=None, train_fraction=0.5)
    folder = build_gta_clips(tmp_path / "out", source, config)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["sequence_frames"] == {f"{k:03d}": 10 for k in range(4)}  # 20 frames, every 2nd
    assert meta["counts"] == {"train_A": 3, "train_B": 3, "test_A": 6, "test_B": 6, "slow": 6}
    assert [c["start_frame"] for c in meta["clips"]["test"]] == [0, 6, 12] * 2
    test_b = load_split(folder, "test", "B")
    for clip, info in zip(test_b, meta["clips"]["test"], strict=True):
        assert list(clip[0, :, 0, 0]) == [10 * (info["start_frame"] + 2 * j) for j in range(4)]


def test_build_is_cached_and_grayscale_variant(speed_source, tmp_path, monkeypatch):
    config = GTAClipConfig(depth=6, size=(12, 20), stride=6, sequences="001-004", domain_a="grayscale")
    folder = build_gta_clips(tmp_path, speed_source, config)
    a, b = load_split(folder, "test", "A"), load_split(folder, "test", "B")
    assert np.array_equal(np.moveaxis(a, 1, -1), grayscale(np.moveaxis(b, 1, -1)))
    assert (a[:, 0] == a[:, 1]).all() and (a[:, 1] == a[:, 2]).all()

    def no_reading(*args, **kwargs):
        raise AssertionError("the cached data set was rebuilt")

    monkeypatch.setattr(gta, "read_viper_sequence", no_reading)
    assert build_gta_clips(tmp_path, speed_source, config) == folder
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
    with pytest.raises(ValueError, match=r"sequences \['009'\] are not in the source"):
        build_gta_clips(tmp_path, speed_source, GTAClipConfig(depth=6, sequences="001-009"))


def test_procedural_source_is_the_default(tmp_path, monkeypatch):
    scene = DrivingSceneConfig(size=(24, 40), frames=8, num_pedestrians=0)
    folder = build_gta_clips(tmp_path, None, GTAClipConfig(depth=4, size=(12, 20)), scene)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["source"] == {"kind": "procedural", "scene": scene.folder_name()}
    assert sorted(meta["sequences"]["train"] + meta["sequences"]["test"]) == list(viper.GTA_SEQUENCES)
    assert meta["counts"] == {"train_A": 10, "train_B": 10, "test_A": 10, "test_B": 10, "slow": 5}  # 10/5 sequences
    assert (tmp_path / scene.folder_name() / "train" / "cls" / "044" / "044_00007.png").is_file()
    monkeypatch.setattr(driving_scene, "render_sequence", lambda *a, **k: pytest.fail("rendered again"))
    shutil.rmtree(tmp_path / scene.folder_name())  # the clips are cached on their own
    assert build_gta_clips(tmp_path, "procedural", GTAClipConfig(depth=4, size=(12, 20)), scene) == folder


def test_validation_clips_come_from_sequences_never_trained_on(tmp_path):
    root = _write_viper(tmp_path / "viper", {f"{k:03d}": _grating(k, 12) for k in range(1, 5)})
    for k in range(101, 105):
        rgb, labels = _grating(k - 100, 12)
        write_viper_sequence(root, f"{k:03d}", rgb, labels, split="val")
    config = GTAClipConfig(depth=4, size=(24, 40), sequences="001-004", train_fraction=0.5)
    folder = build_gta_validation_clips(tmp_path / "out", config, source=root, val_source=root)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    held_out = meta["sequences"]["test"]
    assert len(held_out) == 3 and set(held_out) <= {"101", "102", "103", "104"}  # 90% of the val/ sequences
    assert {c["sequence"] for c in meta["clips"]["test"]} == set(held_out) and (folder / "slow.npy").is_file()
    with pytest.raises(ValueError, match="needs val_source"):
        build_gta_validation_clips(tmp_path / "out", config, source=root)
    with pytest.raises(ValueError, match=r"validation scene's seed \(0\) is the training scene's"):
        build_gta_validation_clips(tmp_path / "out", config, DrivingSceneConfig(seed=0), scene_seed=0)
