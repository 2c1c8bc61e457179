"""Review sheets: windows, orientation, PNG montages, GIF videos, the case index and its command line."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from urllib.parse import unquote

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from mr2ct.export.render import midplanes, uncertainty_sheet, video_sheet, volume_sheet
from mr2ct.export.review_readers import read_ras
from mr2ct.export.sheets import main, write_review_sheets
from mr2ct.export.windows import CT_WINDOWS, apply_window
from mr2ct.io.nifti import save_volume
from mr2ct.io.readers import VolumeError

SHAPE = (24, 20, 8)
AFFINE = np.diag([1.0, 1.2, 3.0, 1.0])  # anisotropic voxels, RAS axes


def _head(seed: int = 0, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A toy (MR, CT in HU) pair: a noisy ellipsoid of soft tissue in air."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = x**2 + y**2 + z**2 < 0.8
    noise = np.random.default_rng(seed).normal(size=shape)
    return (inside * 300 + 20 * noise).astype(np.float32), np.where(inside, 40 + 10 * noise, -1000).astype(np.float32)


def _grey_counts(path: Path) -> dict[int, int]:
    """How many pixels of the PNG have each grey value (R == G == B)."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    grey = rgb[..., 0][(rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])]
    return dict(zip(*np.unique(grey, return_counts=True)))


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """Two MR / synthetic CT / CT cases (one with ``&`` in its name) and a cases.csv naming only the first."""
    out = {name: tmp_path / name for name in ("mr", "sct", "ct")}
    for i, case in enumerate(["subject_0001", "subject&0002"]):
        mr, ct = _head(i)
        save_volume(mr, out["mr"] / f"{case}.nii.gz", AFFINE)
        save_volume(ct + 5, out["sct"] / f"{case}_synthct.nii.gz", AFFINE)
        save_volume(ct, out["ct"] / f"{case}.nii.gz", AFFINE)
    (out["sct"] / "summary.csv").write_text("source,output,status,reason,seconds\n", encoding="utf-8")
    out["metrics"] = tmp_path / "cases.csv"
    with open(out["metrics"], "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["case", "mae", "psnr"], [str(out["mr"] / "subject_0001.nii.gz"), "61.2345", "27.5"]])
    return out


def test_windows():
    assert set(CT_WINDOWS) == {"brain", "bone"}
    brain, bone = CT_WINDOWS["brain"], CT_WINDOWS["bone"]
    np.testing.assert_allclose(apply_window([0, 40, 80, 1000, -1000], *brain), [0, 0.5, 1, 1, 0])
    np.testing.assert_allclose(apply_window([40, 1000, 3000], *bone), [0.3, 1500 / 1800, 1], rtol=1e-6)
    with pytest.raises(ValueError, match="width"):
        apply_window([0], 40, 0)


def test_midplanes_orientation():
    v = np.zeros((6, 5, 4))
    v[3, 4, 2] = 1  # anterior (y max), on the axial and coronal mid-planes
    v[3, 2, 3] = 2  # superior (z max)
    v[5, 2, 2] = 3  # patient's right (x max)
    planes = midplanes(v)
    assert {k: p.shape for k, p in planes.items()} == {"axial": (5, 6), "coronal": (4, 6), "sagittal": (4, 5)}
    axial, coronal, sagittal = planes["axial"], planes["coronal"], planes["sagittal"]
    assert axial[0].max() == 1 and np.argwhere(axial == 1)[0, 0] == 0  # anterior at the top
    assert axial[:, 0].max() == 3  # the patient's right on the image's left
    assert coronal[0].max() == 2 and sagittal[0].max() == 2  # superior at the top
    assert sagittal[:, 0].max() == 1  # anterior on the left of the sagittal plane


def test_read_ras_reorients(tmp_path):
    v = np.zeros(SHAPE, np.float32)
    v[0, 0, 0] = 1  # stored first along a left-pointing x axis: the patient's right
    save_volume(v, tmp_path / "lps.nii.gz", np.diag([-1.0, 1.2, 3.0, 1.0]))
    ras, spacing = read_ras(tmp_path / "lps.nii.gz")
    assert ras.shape == SHAPE and spacing == pytest.approx((1.0, 1.2, 3.0))
    assert tuple(np.argwhere(ras == 1)[0]) == (SHAPE[0] - 1, 0, 0)


def test_volume_sheet(tmp_path):
    mr, ct = _head()
    spacing = (1.0, 1.2, 3.0)
    widths = []
    for n, columns in enumerate(
        [
            {"MR": (mr, "mr")},
            {"MR": (mr, "mr"), "sCT": (ct, "ct")},
            {"MR": (mr, "mr"), "sCT": (ct, "ct"), "CT": (ct, "ct")},
        ]
    ):
        path = volume_sheet(tmp_path / f"sheet{n}.png", columns, spacing=spacing, title="subject_0001")
        with Image.open(path) as image:
            assert image.format == "PNG"
            widths.append(image.width)
    assert widths[2] - widths[1] == widths[1] - widths[0] > 0  # every CT column adds two panels: brain and bone
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    with pytest.raises(ValueError, match="one shape"):
        volume_sheet(tmp_path / "bad.png", {"MR": (mr, "mr"), "CT": (ct[:, :, :4], "ct")})
    with pytest.raises(ValueError, match="kind"):
        volume_sheet(tmp_path / "bad.png", {"PET": (mr, "pet")})


def test_volume_sheet_windows_pixels(tmp_path):
    """Left half 40 HU, right half 1000 HU: white in the brain window, light grey (not white) in the bone window."""
    ct = np.full(SHAPE, 40.0, np.float32)
    ct[SHAPE[0] // 2 :] = 1000.0
    counts = _grey_counts(volume_sheet(tmp_path / "ct.png", {"CT": (ct, "ct")}))
    brain_white, bone_1000 = counts.get(255, 0), counts.get(212, 0) + counts.get(213, 0)  # 1500 / 1800 * 255
    assert brain_white > 500 and abs(bone_1000 - brain_white) < 0.1 * brain_white
    assert counts.get(128, 0) > 500 and counts.get(76, 0) + counts.get(77, 0) > 500  # 40 HU: 0.5 and 0.3


def test_video_sheet(tmp_path):
    rng = np.random.default_rng(0)
    grey, rgb, wide = rng.random((1, 6, 16, 16)), rng.random((3, 6, 16, 12)), rng.random((1, 6, 16, 20))
    two = video_sheet(tmp_path / "two.gif", {"source": grey, "translation": rgb}, fps=4)
    three = video_sheet(tmp_path / "three.gif", {"a": grey * 2 - 1, "b": rgb, "c": wide}, value_range=(-1, 1))
    with Image.open(two) as a, Image.open(three) as b:
        assert a.format == "GIF" and a.n_frames == 6 and b.n_frames == 6
        gap = a.width - 28
        assert 0 <= gap <= 8 and b.width == 48 + 2 * gap and a.height == b.height > 16
    still = np.zeros((1, 5, 8, 8))  # identical frames must not be merged
    with Image.open(video_sheet(tmp_path / "still.gif", {"x": still})) as c:
        assert c.n_frames == 5
    with pytest.raises(ValueError, match="same number of frames"):
        video_sheet(tmp_path / "bad.gif", {"a": grey, "b": grey[:, :4]})
    with pytest.raises(ValueError, match="C = 1 or 3"):
        video_sheet(tmp_path / "bad.gif", {"a": grey[0]})


def test_write_review_sheets(tmp_path, folders):
    index = write_review_sheets(
        tmp_path / "review",
        source_dir=folders["mr"],
        translation_dir=folders["sct"],
        truth_dir=folders["ct"],
        metrics_csv=folders["metrics"],
    )
    text = index.read_text(encoding="utf-8")
    assert "subject_0001" in text and "subject&amp;0002" in text and "subject&0002" not in text
    assert "61.2345" in text and "27.5" in text and text.count("\u2013") >= 2  # case 2 has no metrics
    assert "<script" not in text and "http" not in text
    links = set(re.findall(r'(?:href|src)="([^"]+)"', text))
    assert len(links) == 2
    for link in links:
        assert (index.parent / unquote(link)).is_file()
    with Image.open(index.parent / "sheets" / "subject_0001.png") as image:
        assert image.width > 5 * 100  # MR | sCT brain | sCT bone | CT brain | CT bone


def test_write_review_sheets_errors(tmp_path, folders):
    (folders["sct"] / "subject&0002_synthct.nii.gz").unlink()
    out = tmp_path / "review"
    with pytest.raises(FileNotFoundError, match=r"no translation for 1 of 2 case\(s\).*subject&0002"):
        write_review_sheets(out, source_dir=folders["mr"], translation_dir=folders["sct"])
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="nowhere: folder does not exist"):
        write_review_sheets(out, source_dir=tmp_path / "nowhere", translation_dir=folders["sct"])

    save_volume(np.zeros((24, 20, 6)), folders["sct"] / "subject&0002_synthct.nii.gz", AFFINE)
    with pytest.raises(VolumeError, match=r"subject&0002_synthct\.nii\.gz: has shape \(24, 20, 6\)"):
        write_review_sheets(out, source_dir=folders["mr"], translation_dir=folders["sct"])
    assert not (out / "index.html").exists()

    (folders["sct"] / "subject&0002_synthct.nii.gz").write_bytes(b"not a volume")
    with pytest.raises(VolumeError, match="subject&0002_synthct.nii.gz"):
        write_review_sheets(out, source_dir=folders["mr"], translation_dir=folders["sct"])


def test_write_review_sheets_video(tmp_path):
    rng = np.random.default_rng(0)
    src, out = tmp_path / "test_A", tmp_path / "inference"
    for i in range(2):
        for folder, name, data in [
            (src, f"test_A_{i:04d}", rng.random((6, 16, 16, 3)) * 255),
            (out, f"test_A_{i:04d}_toB", rng.random((6, 16, 16, 3)) * 255),
        ]:
            folder.mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), folder / f"{name}.nii.gz")
    index = write_review_sheets(tmp_path / "review", source_dir=src, translation_dir=out, postfix="_toB", video=True)
    with Image.open(index.parent / "sheets" / "test_A_0001.gif") as gif:
        assert gif.n_frames == 6 and gif.width >= 32
    assert "test_A_0000.gif" in index.read_text(encoding="utf-8")


def test_cli(tmp_path, folders, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "--source",
                str(folders["mr"]),
                "--translation",
                str(folders["sct"]),
                "--truth",
                str(folders["ct"]),
                "--metrics",
                str(folders["metrics"]),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "index.html").is_file() and len(list((out / "sheets").glob("*.png"))) == 2
    assert str(out / "index.html") in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"^mr2ct review sheets: .*no translation for 2 of 2"):
        main(
            [
                "--source",
                str(folders["mr"]),
                "--translation",
                str(folders["sct"]),
                "--postfix",
                "_x",
                "--output",
                str(out),
            ]
        )


def test_uncertainty_sheet_overlays_the_map(tmp_path):
    """A map that is high in one corner colours that corner (red/yellow) and leaves the rest grey."""
    _, ct = _head()
    spread = np.zeros(SHAPE, np.float32)
    spread[SHAPE[0] // 2 :, SHAPE[1] // 2 :] = 300.0
    path = uncertainty_sheet(tmp_path / "u.png", ct, spread, np.abs(ct - (ct + 5)), spacing=(1.0, 1.2, 3.0))
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    reddish = (rgb[..., 0] > rgb[..., 2] + 60).sum()
    assert reddish > 200 and len(_grey_counts(path)) > 2
    alone = uncertainty_sheet(tmp_path / "alone.png", ct, spread, None)
    assert Image.open(alone).width < Image.open(path).width  # one map column without the error
    with pytest.raises(ValueError, match="one shape"):
        uncertainty_sheet(tmp_path / "bad.png", ct, spread[:, :, :4])


def test_review_sheets_show_the_confidence_maps(tmp_path, folders):
    """Inference's <case>_uncertainty.nii.gz beside a translation gets its own sheet and index row; the reader
    study and the DICOM export take the translations only."""
    from mr2ct.export.dicom import main as export_dicom
    from mr2ct.export.reader_study import make_study

    save_volume(np.full(SHAPE, 12.0, np.float32), folders["sct"] / "subject_0001_uncertainty.nii.gz", AFFINE)
    write_review_sheets(
        tmp_path / "out",
        source_dir=folders["mr"],
        translation_dir=folders["sct"],
        truth_dir=folders["ct"],
        metrics_csv=folders["metrics"],
    )
    assert sorted(p.name for p in (tmp_path / "out" / "sheets").iterdir()) == [
        "subject&0002.png",
        "subject_0001.png",
        "subject_0001_uncertainty.png",
    ]
    assert "subject_0001 (uncertainty)" in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    examples = tmp_path / "examples"  # real CTs of cases not in the trials
    save_volume(_head(3)[1], examples / "subject_0009.nii.gz", AFFINE)
    make_study(
        tmp_path / "study",
        source_dir=folders["mr"],
        methods={"3D": folders["sct"]},
        real_dir=folders["ct"],
        examples_target_dir=examples,
    )
    assert export_dicom([str(folders["sct"]), "--output", str(tmp_path / "dicom")]) == 0
    assert sorted(p.name for p in (tmp_path / "dicom").iterdir()) == ["subject&0002_synthct", "subject_0001_synthct"]
