"""mr2ct.io: the one atomic-write helper (files and folders) and the one NIfTI writer."""

from __future__ import annotations

import os
import stat

import nibabel as nib
import numpy as np
import pytest
import torch

from mr2ct.io.atomic import atomic_file, atomic_write_text, building_folder, replacing_folder
from mr2ct.io.nifti import write_nifti


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_file_replaces_the_old_file_only_when_complete(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    assert atomic_write_text(path, "old") == path  # the folder is made
    with atomic_file(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(".out.txt.") and tmp.name.endswith(".part.txt")
        tmp.write_text("new", encoding="utf-8")
        assert path.read_text(encoding="utf-8") == "old"  # not yet
    assert path.read_text(encoding="utf-8") == "new" and _names(path.parent) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as open(path, "w") would make it


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, error):
    path = tmp_path / "table.csv"
    atomic_write_text(path, "a,b\n1,2\n")
    with pytest.raises(error):
        with atomic_file(path) as tmp:
            tmp.write_text("a,b\n3", encoding="utf-8")  # half written ...
            raise error("interrupted")  # ... when the writer stops
    assert path.read_text(encoding="utf-8") == "a,b\n1,2\n"
    assert _names(tmp_path) == ["table.csv"]


def test_atomic_file_names_and_durability(tmp_path, monkeypatch):
    with atomic_file(tmp_path / "x.nii.gz") as tmp:
        assert tmp.name.endswith(".part.nii.gz")  # nibabel picks gzip by the name
        nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), tmp)
    assert nib.load(tmp_path / "x.nii.gz").shape == (2, 2, 2)
    with atomic_file(tmp_path / "model.pt", suffix=".part") as tmp:
        assert tmp.name.startswith(".model.pt.") and tmp.name.endswith(".part")
        tmp.write_bytes(b"weights")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic_write_text(tmp_path / "plain.txt", "x")
    assert synced == []
    with atomic_file(tmp_path / "durable.txt", durable=True) as tmp:
        tmp.write_text("x", encoding="utf-8")
    assert len(synced) == 2  # the data, then the folder (the rename)


def test_building_folder(tmp_path):
    with building_folder(tmp_path / "data") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".data.")
        (tmp / "meta.json").write_text("{}", encoding="utf-8")
        assert not (tmp_path / "data").exists()
    assert _names(tmp_path) == ["data"] and _names(tmp_path / "data") == ["meta.json"]

    with pytest.raises(RuntimeError, match="broken"):
        with building_folder(tmp_path / "failed") as tmp:
            (tmp / "half.npy").write_bytes(b"x")
            raise RuntimeError("broken")
    assert _names(tmp_path) == ["data"]  # no partial data set, no temporary folder

    with building_folder(tmp_path / "data") as tmp:  # another process finished the same build first: kept
        (tmp / "meta.json").write_text('{"second": true}', encoding="utf-8")
    assert (tmp_path / "data" / "meta.json").read_text(encoding="utf-8") == "{}" and _names(tmp_path) == ["data"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("not a finished build", encoding="utf-8")
    with pytest.raises(OSError):
        with building_folder(tmp_path / "other") as tmp:
            (tmp / "meta.json").write_text("{}", encoding="utf-8")
    assert _names(tmp_path / "other") == ["x"] and _names(tmp_path) == ["data", "other"]


def test_replacing_folder(tmp_path):
    out = tmp_path / "out"
    with replacing_folder(out) as tmp:
        (tmp / "a").write_text("1", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not empty"):
        with replacing_folder(out):
            pytest.fail("refused before any work")
    with pytest.raises(RuntimeError):
        with replacing_folder(out, overwrite=True) as tmp:
            (tmp / "b").write_text("2", encoding="utf-8")
            raise RuntimeError("failed build")
    assert _names(out) == ["a"] and _names(tmp_path) == ["out"]
    with replacing_folder(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2", encoding="utf-8")
    assert _names(out) == ["b"] and _names(tmp_path) == ["out"]
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not a folder"):
        with replacing_folder(tmp_path / "file", overwrite=True):
            pass


def test_write_nifti_header_channels_and_integer_types(tmp_path):
    affine = np.array([[-0.9, 0, 0, 10], [0, 0.8, 0, -5], [0, 0, 3.0, 2], [0, 0, 0, 1]])
    rgb = torch.rand(4, 5, 6, 3) * 255
    image = nib.load(write_nifti(tmp_path / "rgb.nii.gz", rgb, torch.as_tensor(affine)))
    assert image.shape == (4, 5, 6, 3) and image.get_data_dtype() == np.float32  # the data's own type
    np.testing.assert_allclose(image.get_fdata(), rgb.numpy(), rtol=1e-6)
    assert np.allclose(image.affine, affine) and image.header.get_xyzt_units()[0] == "mm"
    assert (int(image.header["qform_code"]), int(image.header["sform_code"])) == (1, 1)

    values = np.array([-3.4, 0.5, 1.5, 254.6, 300.0]).reshape(5, 1, 1)
    stored = nib.load(write_nifti(tmp_path / "u8.nii.gz", values, np.eye(4), dtype="uint8"))
    assert stored.get_data_dtype() == np.uint8
    assert np.asarray(stored.dataobj).ravel().tolist() == [0, 0, 2, 255, 255]  # rounded (half to even), clipped
    wide = np.array([-40000, 7, 40000], dtype=np.int32).reshape(3, 1, 1)
    assert np.asarray(
        nib.load(write_nifti(tmp_path / "i16.nii.gz", wide, np.eye(4), dtype=np.int16)).dataobj
    ).ravel().tolist() == [-32768, 7, 32767]


def test_failed_nifti_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_nifti(tmp_path / "ct.nii.gz", np.ones((2, 3, 4), np.int16), np.eye(4))
    before = path.read_bytes()

    def killed_midway(image, filename):
        with open(filename, "wb") as f:
            f.write(b"\x1f\x8b partial gzip")
        raise KeyboardInterrupt

    monkeypatch.setattr(nib, "save", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        write_nifti(path, np.zeros((2, 3, 4), np.int16), np.eye(4))
    assert path.read_bytes() == before and _names(tmp_path) == ["ct.nii.gz"]
