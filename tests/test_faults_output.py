"""Output folders that are, hold or lie inside an input: every command that replaces or writes a folder refuses
them before any work, and every input stays byte for byte as it was.

``mr2ct review make --source S/mr ... --output S --overwrite`` used to delete ``S/mr``, ``S/m3d``, ``S/m2d`` and
``S/ct``: the atomic folder replacement moved ``S`` aside and removed it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_dicom_export import source_series

from mr2ct.cli import main as mr2ct
from mr2ct.io.atomic import check_apart, replacing_folder

CASES = ("case1", "case2")


def _nifti(path: Path, value: float, seed: int) -> None:
    data = value + 50 * np.random.default_rng(seed).standard_normal((10, 8, 4))
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([1.0, 1.0, 2.0, 1.0])), str(path))


@pytest.fixture
def inputs(tmp_path) -> Path:
    """``S/mr``, ``S/m3d``, ``S/m2d``, ``S/ct``, ``S/examples`` (volumes), ``S/dicom/<case>_synthct`` (MR series)."""
    root = tmp_path / "S"
    for i, folder in enumerate(("mr", "m3d", "m2d", "ct", "examples")):
        (root / folder).mkdir(parents=True)
        for j, case in enumerate(CASES):
            name = f"{case}_synthct.nii.gz" if folder in ("m3d", "m2d") else f"{case}.nii.gz"
            _nifti(root / folder / (f"train{j}.nii.gz" if folder == "examples" else name), 40 * i, 10 * i + j)
    for case in CASES:
        source_series(root / "dicom" / f"{case}_synthct")
    return root


def checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def review_make(s: Path, out: Path) -> list[str]:
    return [
        "review",
        "make",
        "--source",
        str(s / "mr"),
        "--method",
        f"3D={s / 'm3d'}",
        "--method",
        f"random={s / 'm2d'}",
        "--real",
        str(s / "ct"),
        "--examples-target",
        str(s / "examples"),
        "--num-examples",
        "1",
        "--output",
        str(out),
        "--overwrite",
    ]


def export_folder(s: Path, out: Path) -> list[str]:
    return ["export-dicom", str(s / "m3d"), "--output", str(out), "--source-dicom", str(s / "dicom"), "--overwrite"]


def export_one(s: Path, out: Path) -> list[str]:
    return [
        "export-dicom",
        str(s / "m3d" / "case1_synthct.nii.gz"),
        "--output",
        str(out),
        "--source-dicom",
        str(s / "dicom" / "case1_synthct"),
        "--overwrite",
    ]


def sheets(s: Path, out: Path) -> list[str]:
    return [
        "review",
        "sheets",
        "--source",
        str(s / "mr"),
        "--translation",
        str(s / "m3d"),
        "--truth",
        str(s / "ct"),
        "--output",
        str(out),
    ]


# name: (command line for inputs S and output OUT, the output as a path under S, what the message must say)
OUTPUT_CASES = {
    "review-make-holds-all-inputs": (review_make, lambda s: s, "is or holds the source"),
    "review-make-is-the-source": (review_make, lambda s: s / "mr", "is or holds the source"),
    "review-make-is-a-method": (review_make, lambda s: s / "m2d", "is or holds the method 'random'"),
    "review-make-is-the-real-folder": (review_make, lambda s: s / "ct", "is or holds the real"),
    "review-make-is-the-examples": (review_make, lambda s: s / "examples", "is or holds the target examples"),
    "review-make-inside-the-source": (review_make, lambda s: s / "mr" / "study", "lies inside the source folder"),
    "review-make-through-a-symlink": (review_make, lambda s: _link(s, s / "m3d"), "is or holds the method '3D'"),
    "export-dicom-is-the-input": (export_folder, lambda s: s / "m3d", "is or holds the input"),
    "export-dicom-holds-the-input": (export_folder, lambda s: s, "is or holds the input"),
    "export-dicom-inside-the-input": (export_folder, lambda s: s / "m3d" / "dicom", "lies inside the input folder"),
    "export-dicom-is-the-sources": (export_folder, lambda s: s / "dicom", "is or holds the source"),
    "export-dicom-one-is-the-source": (export_one, lambda s: s / "dicom" / "case1_synthct", "is or holds the source"),
    "export-dicom-one-holds-the-source": (export_one, lambda s: s / "dicom", "is or holds the source"),
    "export-dicom-one-inside-the-source": (
        export_one,
        lambda s: s / "dicom" / "case1_synthct" / "sct",
        "lies inside the source folder",
    ),
    "export-dicom-one-holds-the-input": (export_one, lambda s: s / "m3d", "is or holds the input"),
    "sheets-is-the-source": (sheets, lambda s: s / "mr", "lies inside the source folder"),
    "sheets-inside-the-translation": (sheets, lambda s: s / "m3d" / "review", "lies inside the translation"),
    "sheets-folder-is-the-truth": (sheets, lambda s: _rename(s, "ct", "sheets").parent, "is or holds the truth"),
}


def _link(s: Path, target: Path) -> Path:
    (s.parent / "link").symlink_to(target, target_is_directory=True)
    return s.parent / "link"


def _rename(s: Path, old: str, new: str) -> Path:
    """Move ``S/<old>`` to ``S/<new>`` (the commands then read it there)."""
    (s / old).rename(s / new)
    (s / old).symlink_to(s / new, target_is_directory=True)
    return s / new


@pytest.mark.parametrize("case", sorted(OUTPUT_CASES))
def test_output_apart_from_inputs(inputs, case, capsys):
    command, output, message = OUTPUT_CASES[case]
    out = output(inputs)
    before = checksums(inputs)
    try:
        code = mr2ct(command(inputs, out))
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err + (code if isinstance(code, str) else "")
    assert code not in (0, None), case
    assert message in err and "Traceback" not in err, (case, err)
    assert checksums(inputs) == before, case  # nothing deleted, nothing added
    assert not [p for p in inputs.parent.iterdir() if p.name.startswith(".")], case  # no temporary folder left


def test_outputs_beside_the_inputs_are_fine(inputs, capsys):
    """The same commands with outputs beside the inputs (their safe use) still work."""
    before = checksums(inputs)
    s = inputs
    assert mr2ct(review_make(s, s.parent / "study")) == 0
    assert mr2ct(export_folder(s, s.parent / "dicom_out")) == 0
    assert mr2ct(export_one(s, s.parent / "one")) == 0
    assert mr2ct(sheets(s, s.parent / "sheets")) == 0
    assert mr2ct(sheets(s, s)) == 0  # S/sheets and S/index.html beside the inputs: nothing of them is replaced
    capsys.readouterr()
    after = checksums(inputs)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {"index.html", "sheets/case1.png", "sheets/case2.png"}


def test_check_apart_and_replacing_folder(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.txt").write_text("keep", encoding="utf-8")
    check_apart(tmp_path / "out", {"input": tmp_path / "in", "nothing": None})
    check_apart(tmp_path / "in2", {"input": tmp_path / "in"})  # a name that starts the same is another folder
    check_apart(tmp_path / "out", {"file": tmp_path / "in" / "a.txt"})
    for out, message in (
        (tmp_path / "in", "is or holds"),
        (tmp_path, "is or holds"),
        (tmp_path / "in" / "sub" / "x", "lies inside"),
        (tmp_path / "in" / "a.txt", "lies inside"),
    ):
        with pytest.raises(ValueError, match=message):
            check_apart(out, {"input": tmp_path / "in"})
        with pytest.raises(ValueError, match=message):
            with replacing_folder(out, overwrite=True, inputs={"input": tmp_path / "in"}):
                pytest.fail("the block must not run")
    assert (tmp_path / "in" / "a.txt").read_text(encoding="utf-8") == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
