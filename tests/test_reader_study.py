"""Reader study: building a blinded 2AFC study, scoring answers (Table 3), and a reader completing it in Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mr2ct.export.reader_study import StudyError, make_study, score_study, serve_study
from mr2ct.export.study_server import answers_file_name
from mr2ct.io.readers import VolumeError
from mr2ct.metrics.two_afc import (
    REAL,
    AnswerError,
    Judgement,
    StudyKey,
    Trial,
    format_preference_table,
    load_answers,
    preference_table,
)

CASES = ["subject_0001", "subject_0002", "subject_0003"]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _write(path: Path, value: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = (value + 50 * rng.standard_normal((16, 12, 5))).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([0.9, 0.9, 3.0, 1.0])), str(path))


@pytest.fixture
def outputs(tmp_path):
    """Source MR, two methods' synthetic CTs (``<case>_synthct``), real CTs and real examples, 3 cases."""
    folders = {name: tmp_path / name for name in ("mr", "3D", "random", "ct", "examples_ct")}
    for folder in folders.values():
        folder.mkdir()
    for i, case in enumerate(CASES):
        _write(folders["mr"] / f"{case}.nii.gz", 300, i)
        _write(folders["3D"] / f"{case}_synthct.nii.gz", 40, 10 + i)
        _write(folders["random"] / f"{case}_synthct.nii.gz", 0, 20 + i)
        _write(folders["ct"] / f"{case}.nii.gz", 40, 30 + i)
        _write(folders["examples_ct"] / f"train_{i}.nii.gz", 40, 40 + i)
    return folders


def _make(outputs, out: Path, **kwargs) -> Path:
    return make_study(
        out,
        outputs["mr"],
        {"3D": outputs["3D"], "random": outputs["random"]},
        real_dir=outputs["ct"],
        examples_target_dir=outputs["examples_ct"],
        num_examples=2,
        **kwargs,
    )


def _study(out: Path) -> dict:
    text = (out / "study" / "study.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


def test_make_study_is_blinded_and_complete(outputs, tmp_path):
    out = _make(outputs, tmp_path / "study")
    key = StudyKey.load(out / "key.json")
    study = _study(out)
    # one trial per case and pair: 3D vs random, 3D vs real, random vs real
    assert len(key.trials) == len(study["trials"]) == 3 * len(CASES)
    pairs = sorted(tuple(sorted((t.left, t.right))) for t in key.trials.values())
    assert pairs == sorted([("3D", "random"), ("3D", REAL), ("random", REAL)] * 3)
    assert {t.case for t in key.trials.values()} == set(CASES)
    assert {t.left for t in key.trials.values()} >= {"3D"} and {t.right for t in key.trials.values()} >= {"3D"}
    # nothing in the study data (the page itself is a fixed file) names a method, a folder or a case
    data = (out / "study" / "study.js").read_text(encoding="utf-8")
    for secret in ["3D", "random", "synthct", "subject_", str(tmp_path)]:
        assert secret not in data, secret
    images = {t[side]["src"] for t in study["trials"] for side in ("left", "right")}
    assert len(images) == 3 * len(CASES)  # every (method or real, case) once
    assert all((out / "study" / src).is_file() for src in images)
    assert [e["domain"] for e in study["examples"]] == ["MR", "MR", "CT", "CT"]
    # a film strip: 5 axial slices of 12 x 16 pixels (rows = anterior-posterior), stacked
    from PIL import Image

    first = study["trials"][0]["left"]
    assert (first["frames"], first["height"], first["width"]) == (5, 12, 16)
    assert Image.open(out / "study" / first["src"]).size == (16, 5 * 12)
    assert (out / "answers").is_dir()
    # same seed, same study; another seed, another order
    again = _make(outputs, tmp_path / "again")
    assert StudyKey.load(again / "key.json") == key
    other = StudyKey.load(_make(outputs, tmp_path / "other", seed=1) / "key.json")
    assert other.trials != key.trials


def test_film_strip_is_radiological_and_windowed(tmp_path):
    from mr2ct.export.reader_study import _display_frames

    data = np.full((8, 6, 3), -1000.0, np.float32)
    data[0, 5, 2] = 1000.0  # RAS: x = 0 is the patient's left, y = 5 the most anterior, z = 2 the top slice
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 2.0, 3.0, 1.0])), str(path))
    frames, aspect = _display_frames(path, "ct", (40.0, 400.0))
    assert frames.shape == (3, 6, 8) and aspect == pytest.approx(2.0)
    assert frames[2, 0, 7] == 1.0  # radiological convention: anterior at the top, patient's left on the right
    assert np.count_nonzero(frames) == 1


def test_make_study_errors(outputs, tmp_path):
    methods = {"3D": outputs["3D"], "random": outputs["random"]}
    (outputs["random"] / f"{CASES[1]}_synthct.nii.gz").unlink()
    examples = outputs["examples_ct"]
    with pytest.raises(StudyError, match=r"method 'random'.*no file for case\(s\) \['subject_0002'\]"):
        make_study(tmp_path / "s", outputs["mr"], methods, real_dir=outputs["ct"], examples_target_dir=examples)
    _write(outputs["random"] / f"{CASES[1]}_synthct.nii.gz", 0, 1)
    _write(outputs["ct"] / "subject_0009.nii.gz", 0, 1)
    with pytest.raises(StudyError, match=r"real folder .*subject_0009.*match no source case"):
        make_study(tmp_path / "s", outputs["mr"], methods, real_dir=outputs["ct"], examples_target_dir=examples)
    with pytest.raises(StudyError, match="two methods"):
        make_study(tmp_path / "s", outputs["mr"], {"3D": outputs["3D"]}, examples_target_dir=outputs["ct"])
    with pytest.raises(StudyError, match="--examples-target"):
        make_study(tmp_path / "s", outputs["mr"], methods)
    with pytest.raises(StudyError, match="--examples-target"):  # the real images are no default: they are trials
        make_study(tmp_path / "s", outputs["mr"], methods, real_dir=outputs["ct"])
    with pytest.raises(StudyError, match="unknown kind 'xray'"):
        make_study(tmp_path / "s", outputs["mr"], methods, target_kind="xray", examples_target_dir=outputs["ct"])
    with pytest.raises(StudyError, match="source folder .*not found"):
        make_study(tmp_path / "s", tmp_path / "nowhere", methods, examples_target_dir=outputs["ct"])
    with pytest.raises(StudyError, match="invalid method name 'real'"):
        make_study(
            tmp_path / "s",
            outputs["mr"],
            {"real": outputs["3D"], "random": outputs["random"]},
            examples_target_dir=outputs["ct"],
        )
    assert not (tmp_path / "s").exists()  # nothing half-built
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(StudyError, match="exists and is not empty"):
        make_study(existing, outputs["mr"], methods, examples_target_dir=outputs["ct"])
    assert (existing / "notes.txt").read_text(encoding="utf-8") == "keep"


def test_examples_that_are_trial_images_are_refused(outputs, tmp_path):
    """The real examples used to default to the --real images: the very PNGs a reader then met as "real" in the
    trials. Such examples, copies of them, or the same voxels in another format are refused."""
    copies = tmp_path / "copies"
    copies.mkdir()
    (copies / "other_name.nii.gz").write_bytes((outputs["ct"] / f"{CASES[1]}.nii.gz").read_bytes())
    resaved = tmp_path / "resaved"
    resaved.mkdir()
    image = nib.load(outputs["ct"] / f"{CASES[2]}.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine), str(resaved / "plain.nii"))
    methods = {"3D": outputs["3D"], "random": outputs["random"]}
    for folder, shown in ((outputs["ct"], CASES[0]), (copies, CASES[1]), (resaved, CASES[2])):
        with pytest.raises(StudyError, match=f"is the very image shown in the trials as 'real' of case '{shown}'"):
            make_study(tmp_path / "s", outputs["mr"], methods, real_dir=outputs["ct"], examples_target_dir=folder)
    assert not (tmp_path / "s").exists()
    with pytest.raises(StudyError, match=f"'3D' of case '{CASES[0]}'"):  # a method's output is no example either
        make_study(tmp_path / "s", outputs["mr"], methods, examples_target_dir=outputs["3D"])


def test_images_of_a_case_share_one_grid(outputs, tmp_path):
    """A real CT on another grid than the synthetic ones showed as another slice count and size in study.js and
    on screen ("slice k / N"): refused, naming the files."""
    real = outputs["ct"] / f"{CASES[1]}.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 12, 7), np.float32) + 40, np.diag([0.9, 0.9, 3.0, 1.0])), str(real))
    with pytest.raises(
        StudyError,
        match=rf"case '{CASES[1]}': its images differ in grid .*7 frames of 12x16.*"
        r"5 frames of 12x16.*resample them to one grid",
    ):
        _make(outputs, tmp_path / "s")
    nib.save(nib.Nifti1Image(np.zeros((16, 12, 5), np.float32) + 40, np.diag([0.9, 1.2, 3.0, 1.0])), str(real))
    with pytest.raises(StudyError, match=r"pixel aspect 1\.333.*pixel aspect 1"):  # same shape, other spacing
        _make(outputs, tmp_path / "s")
    assert not (tmp_path / "s").exists()
    _write(outputs["ct"] / f"{CASES[1]}.nii.gz", 40, 31)
    for case in CASES:  # spacings that differ only in float rounding are one grid, and get one aspect value
        path = outputs["3D"] / f"{case}_synthct.nii.gz"
        image = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj), np.diag([0.9, 0.9 * (1 + 1e-6), 3.0, 1.0])), str(path))
    study = _study(_make(outputs, tmp_path / "s"))
    assert len({t[side]["aspect"] for t in study["trials"] for side in ("left", "right")}) == 1


def test_nothing_but_the_pixels_tells_the_sides_apart(outputs, tmp_path):
    """The two images of a trial have the same entry in study.js but for their random name, the same PNG file size
    (PNG sizes used to cluster by method: smoother outputs compress better) and the same time stamp."""
    from PIL import Image

    from mr2ct.export.reader_study import _display_frames, _strip

    out = _make(outputs, tmp_path / "study")
    study, key = _study(out), StudyKey.load(out / "key.json")
    sizes = {}
    for trial in study["trials"]:
        left, right = trial["left"], trial["right"]
        assert {k: v for k, v in left.items() if k != "src"} == {k: v for k, v in right.items() if k != "src"}
        paths = [out / "study" / side["src"] for side in (left, right)]
        assert paths[0].stat().st_size == paths[1].stat().st_size, trial["id"]
        assert paths[0].stat().st_mtime_ns == paths[1].stat().st_mtime_ns
        sizes[key.trials[trial["id"]].case] = paths[0].stat().st_size
    assert len(sizes) == len(CASES)
    stamps = {p.stat().st_mtime_ns for p in (out / "study" / "images").iterdir()}
    assert len(stamps) == 1
    trial = key.trials[study["trials"][0]["id"]]  # the padding leaves the pixels as they were
    png = Image.open(out / "study" / study["trials"][0]["left"]["src"])
    png.load()
    source = {
        "3D": outputs["3D"] / f"{trial.case}_synthct.nii.gz",
        "random": outputs["random"] / f"{trial.case}_synthct.nii.gz",
        REAL: outputs["ct"] / f"{trial.case}.nii.gz",
    }[trial.left]
    np.testing.assert_array_equal(np.asarray(png), _strip(_display_frames(source, "ct", (40.0, 400.0))[0]))


def _key() -> StudyKey:
    trials = [Trial(f"t{i:02d}", f"c{i}", "3D", "random") for i in range(10)]
    trials += [Trial(f"r{i:02d}", f"c{i}", "3D", REAL) for i in range(4)]
    trials += [Trial(f"s{i:02d}", f"c{i}", REAL, "random") for i in range(4)]
    return StudyKey("abc", ("3D", "random"), {t.id: t for t in trials})


def _answers(path: Path, reader: str, choices: dict[str, str], study_id: str = "abc") -> Path:
    answers = [{"trial": t, "choice": c} for t, c in choices.items()]
    path.write_text(json.dumps({"study_id": study_id, "reader": reader, "answers": answers}), encoding="utf-8")
    return path


def test_preference_table_known_result(tmp_path):
    key = _key()
    # reader 1: 3D preferred in 7 of the 10 model-vs-model trials; 3D beats real once in 4; random never
    one = {f"t{i:02d}": "left" if i < 7 else "right" for i in range(10)}
    one |= {f"r{i:02d}": "left" if i == 0 else "right" for i in range(4)}
    one |= {f"s{i:02d}": "left" for i in range(4)}
    judgements = load_answers([_answers(tmp_path / "a.json", "one", one)], key)
    assert len(judgements) == 18
    assert Judgement("one", "t08", "random", "3D") in judgements
    rows = {r.method: r for r in preference_table(judgements, key.methods, num_bootstrap=4000, seed=1)}
    assert rows["3D"].p_over_methods == pytest.approx(0.7) and rows["3D"].n_over_methods == 10
    assert rows["random"].p_over_methods == pytest.approx(0.3)
    assert rows["3D"].p_over_real == pytest.approx(0.25) and rows["3D"].n_over_real == 4
    assert rows["random"].p_over_real == 0.0 and rows["random"].sigma_over_real == 0.0
    # bootstrap sigma of a proportion: close to sqrt(p (1 - p) / n)
    assert rows["3D"].sigma_over_methods == pytest.approx(np.sqrt(0.21 / 10), rel=0.1)
    assert rows["3D"].sigma_over_methods == pytest.approx(rows["random"].sigma_over_methods, rel=0.01)
    # a second reader who always prefers 3D: pooled judgements
    two = {t: ("left" if key.trials[t].left == "3D" else "right") for t in key.trials if t.startswith("t")}
    judgements = load_answers([tmp_path / "a.json", _answers(tmp_path / "b.json", "two", two)], key)
    rows = {r.method: r for r in preference_table(judgements, key.methods)}
    assert rows["3D"].p_over_methods == pytest.approx(17 / 20)
    table = format_preference_table(list(rows.values()))
    assert "| 3D | 0.85 ± " in table and "(n=20)" in table and "| random | 0.15 ± " in table


def test_answers_errors(tmp_path):
    key = _key()
    cases = {
        "unknown trial 'zz'": {"zz": "left"},
        "choice 'up'": {"t00": "up"},
    }
    for message, choices in cases.items():
        with pytest.raises(AnswerError, match=message):
            load_answers([_answers(tmp_path / "x.json", "r", choices)], key)
    path = tmp_path / "twice.json"
    path.write_text(
        json.dumps({"study_id": "abc", "reader": "r", "answers": [{"trial": "t00", "choice": "left"}] * 2}),
        encoding="utf-8",
    )
    with pytest.raises(AnswerError, match="twice.json: trial 't00' answered twice"):
        load_answers([path], key)
    with pytest.raises(AnswerError, match="answers for study 'other'"):
        load_answers([_answers(tmp_path / "o.json", "r", {"t00": "left"}, study_id="other")], key)
    a = _answers(tmp_path / "a.json", "same", {"t00": "left"})
    b = _answers(tmp_path / "b.json", "same", {"t01": "left"})
    with pytest.raises(AnswerError, match="reader 'same' already answered"):
        load_answers([a, b], key)
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(AnswerError, match="bad.json: not a JSON answers file"):
        load_answers([tmp_path / "bad.json"], key)
    with pytest.raises(AnswerError, match="missing.json: answers file not found"):
        load_answers([tmp_path / "missing.json"], key)


def test_score_cli(outputs, tmp_path):
    out = _make(outputs, tmp_path / "study")
    result = subprocess.run(
        [sys.executable, "-m", "mr2ct.cli", "review", "score", str(out)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )
    assert result.returncode == 2 and "no answers to score" in result.stderr
    key = StudyKey.load(out / "key.json")
    choices = {t.id: "left" if t.left == "3D" or t.right == "random" else "right" for t in key.trials.values()}
    _answers(out / "answers" / "answers_r1.json", "r1", choices, study_id=key.study_id)
    result = subprocess.run(
        [sys.executable, "-m", "mr2ct.cli", "review", "score", str(out), "--csv", str(tmp_path / "table.csv")],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )
    assert result.returncode == 0, result.stderr
    assert "| 3D | 1.00 ± 0.00 (n=3) | 1.00 ± 0.00 (n=3) |" in result.stdout
    assert "| random | 0.00 ± 0.00 (n=3) | 0.00 ± 0.00 (n=3) |" in result.stdout
    assert "r1: 9/9" in result.stdout
    assert (tmp_path / "table.csv").read_text(encoding="utf-8").startswith("method,p_over_methods")


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401 - only checks that selenium is installed
    except ImportError:
        return "selenium is not installed"
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            return f"{tool} not found (Debian packages chromium and chromium-driver)"
    return None


def _chromium(downloads: Path, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_reader_completes_study_in_chromium(outputs, tmp_path):
    """A reader opens the served study, looks at the examples, always prefers 3D (and real over random); the
    answers are saved by the server and downloadable, and the score is the known table."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {missing}")
        pytest.skip(missing)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = _make(outputs, tmp_path / "study", show_source=True)
    key = StudyKey.load(out / "key.json")
    name = answers_file_name("Dr Test")
    assert name.startswith("answers_Dr_Test_") and name.endswith(".json")
    server = serve_study(out, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _chromium(downloads, tmp_path / "profile")
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        driver.find_element(By.ID, "start").click()
        assert "enter a name" in driver.find_element(By.ID, "name-error").text
        driver.find_element(By.ID, "reader-name").send_keys("Dr Test")
        driver.find_element(By.ID, "start").click()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#example-list canvas")) == 4
        driver.find_element(By.ID, "continue").click()
        seen = []
        for number in range(1, len(key.trials) + 1):
            assert driver.find_element(By.ID, "progress").text == f"Trial {number} of {len(key.trials)}"
            assert len(driver.find_elements(By.CSS_SELECTOR, "#trial-box canvas")) == 3  # input + two outputs
            trial = key.trials[driver.find_element(By.ID, "trial-box").get_attribute("data-trial")]
            seen.append(trial.id)
            left_wins = trial.left == "3D" or trial.right == "random"
            driver.find_element(By.ID, "choose-left" if left_wins else "choose-right").click()
        assert sorted(seen) == sorted(key.trials)
        WebDriverWait(driver, 30).until(
            lambda d: "Saved on the study computer" in d.find_element(By.ID, "save-status").text
        )
        shown = json.loads(driver.find_element(By.ID, "answers-json").get_attribute("value"))
        driver.find_element(By.ID, "download").click()
        deadline = time.time() + 30  # the suite's other worker can slow Chromium down on 2 cores
        while not (downloads / name).is_file() and time.time() < deadline:
            time.sleep(0.1)
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    saved = json.loads((out / "answers" / name).read_text(encoding="utf-8"))
    assert saved == shown and saved["reader"] == "Dr Test" and len(saved["answers"]) == len(key.trials)
    assert (downloads / name).is_file(), f"no download named {name}: {sorted(p.name for p in downloads.iterdir())}"
    assert json.loads((downloads / name).read_text(encoding="utf-8")) == saved  # the page names it as the server
    text, rows = score_study(out)
    assert "| 3D | 1.00 ± 0.00 (n=3) | 1.00 ± 0.00 (n=3) |" in text
    assert "| random | 0.00 ± 0.00 (n=3) | 0.00 ± 0.00 (n=3) |" in text


def test_video_study(tmp_path):
    """Videos (T, H, W, 3) as NIfTI in [0, 255], as the video bundles write them: film strips of their frames,
    flagged for playback."""
    rng = np.random.default_rng(0)
    for name in ("seg", "3D", "random", "real"):
        (tmp_path / name).mkdir()
        for case in ("clip_a", "clip_b"):
            video = (rng.random((4, 6, 10, 3)) * 255).astype(np.float32)
            nib.save(nib.Nifti1Image(video, np.eye(4)), str(tmp_path / name / f"{case}.nii.gz"))
    out = make_study(
        tmp_path / "study",
        tmp_path / "seg",
        {"3D": tmp_path / "3D", "random": tmp_path / "random"},
        examples_target_dir=tmp_path / "real",
        source_kind="video",
        target_kind="video",
        domains=("segmentation", "video"),
        num_examples=1,
    )
    study = _study(out)
    assert len(study["trials"]) == 2 and study["domains"] == ["segmentation", "video"]
    first = study["trials"][0]["left"]
    assert first["video"] and (first["frames"], first["height"], first["width"]) == (4, 6, 10)
    from PIL import Image

    strip = np.asarray(Image.open(out / "study" / first["src"]))
    assert strip.shape == (24, 10, 3) and strip.max() > 200
    nib.save(nib.Nifti1Image(np.zeros((4, 6, 10, 2), np.float32), np.eye(4)), str(tmp_path / "3D" / "clip_a.nii.gz"))
    with pytest.raises(VolumeError, match=r"clip_a.nii.gz.*\(T, H, W\) or \(T, H, W, 3\)"):
        make_study(
            tmp_path / "again",
            tmp_path / "seg",
            {"3D": tmp_path / "3D", "random": tmp_path / "random"},
            examples_target_dir=tmp_path / "real",
            source_kind="video",
            target_kind="video",
        )
    assert not (tmp_path / "again").exists()
