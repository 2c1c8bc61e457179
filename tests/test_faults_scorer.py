"""Hostile and careless answer and key files for ``mr2ct review score``: a table of bad files, each refused with
one line that names the file and the problem (never a stack trace), and the limits on what is read."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from mr2ct.export.reader_study import main as review
from mr2ct.export.reader_study import score_study
from mr2ct.metrics.two_afc import MAX_JSON_BYTES, AnswerError, StudyKey, Trial, load_answers

STUDY_ID = "5e1f00d5ab12"
TRIALS = {f"t{i:04d}": Trial(f"t{i:04d}", f"case{i}", "3D", "real") for i in range(1, 4)}


def answers(reader="Dr Test", **changes) -> dict:
    data = {"study_id": STUDY_ID, "reader": reader, "answers": [{"trial": t, "choice": "left"} for t in TRIALS]}
    return {**data, **changes}


def as_bytes(data) -> bytes:
    return data if isinstance(data, bytes) else json.dumps(data).encode("utf-8")


def with_one(**answer) -> dict:
    return answers(answers=[answer])


def nested(depth: int) -> bytes:
    return as_bytes(answers()).replace(b'"Dr Test"', b"[" * depth + b"]" * depth)


# name: (content of answers/answers_x.json, text the message must hold)
ANSWER_CASES: dict[str, tuple[bytes | dict | list, str]] = {
    "trial-is-a-list": (with_one(trial=["t0001"], choice="left"), "unknown trial ['t0001']"),  # was a TypeError
    "trial-is-a-dict": (with_one(trial={"id": "t0001"}, choice="left"), "unknown trial {'id': 't0001'}"),
    "trial-is-a-number": (with_one(trial=1, choice="left"), "unknown trial 1"),
    "trial-is-null": (with_one(choice="left"), "unknown trial None"),
    "unknown-trial": (with_one(trial="t9999", choice="left"), "unknown trial 't9999'"),
    "choice-both": (with_one(trial="t0001", choice="both"), "choice 'both' is not 'left' or 'right'"),
    "choice-is-a-list": (with_one(trial="t0001", choice=["left"]), "choice ['left']"),
    "trial-twice": (answers(answers=[{"trial": "t0001", "choice": "left"}] * 2), "trial 't0001' answered twice"),
    "answer-is-a-string": (answers(answers=["t0001"]), "answer 0 is 't0001', not an object"),
    "answers-is-a-dict": (answers(answers={"t0001": "left"}), "no 'answers' list"),
    "no-answers": ({"study_id": STUDY_ID, "reader": "r"}, "no 'answers' list"),
    "other-study": (answers(study_id="other"), "answers for study 'other'"),
    "study-id-is-a-list": (answers(study_id=[STUDY_ID]), "answers for study ['5e1f00d5ab12']"),
    "no-reader": ({"study_id": STUDY_ID, "answers": []}, "no reader name"),
    "reader-is-a-list": (answers(["Dr", "Test"]), "reader name ['Dr', 'Test'] is not a string"),
    "reader-too-long": (answers("r" * 300), "300 characters is longer than 100"),
    "reader-control-characters": (answers("Dr\nTest"), "control characters"),
    "top-level-array": ([answers()], "expected an object"),
    "top-level-string": ("answers", "expected an object"),
    "not-json": (b"{not json", "not a JSON answers file"),
    "not-utf-8": (b'{"reader": "\xff"}', "not UTF-8"),
    "nan": (as_bytes(answers()).replace(b'"left"}]', b'"left", "ms": NaN}]'), "NaN is not a JSON value"),
    "infinity": (as_bytes(answers()).replace(b'"left"}]', b'"left", "ms": -Infinity}]'), "-Infinity is not a JSON"),
    "nested-100000-deep": (nested(100_000), "nested too deeply"),  # was a RecursionError
    "empty-file": (b"", "not a JSON answers file"),
    "one-byte-over-the-limit": (b" " * (MAX_JSON_BYTES - 1) + b"{}", f"larger than the limit of {MAX_JSON_BYTES}"),
}


def make_study(root: Path) -> Path:
    (root / "answers").mkdir(parents=True)
    StudyKey(STUDY_ID, ("3D",), dict(TRIALS)).save(root / "key.json")
    (root / "answers" / "answers_good.json").write_bytes(as_bytes(answers("Good Reader")))
    return root


@pytest.mark.parametrize("case", sorted(ANSWER_CASES))
def test_bad_answers_file_is_refused_with_its_name(tmp_path, case, capsys):
    content, message = ANSWER_CASES[case]
    study = make_study(tmp_path / "study")
    bad = study / "answers" / "answers_x.json"
    bad.write_bytes(as_bytes(content))
    with pytest.raises(AnswerError) as err:
        score_study(study)
    text = str(err.value)
    assert text.startswith(f"{bad}: ") and message in text, text
    assert "\n" not in text and "Traceback" not in text and len(text) < len(str(bad)) + 300, text
    assert review(["score", str(study)]) == 2  # the command line: one line, exit status 2
    out = capsys.readouterr()
    assert out.err == f"mr2ct review score: {text}\n" and out.out == ""


def test_repeated_reader_and_missing_file(tmp_path):
    study = make_study(tmp_path / "study")
    (study / "answers" / "answers_same.json").write_bytes(as_bytes(answers(" Good Reader ")))
    with pytest.raises(AnswerError, match=r"answers_same.json: reader 'Good Reader' already answered in .*good"):
        score_study(study)
    with pytest.raises(AnswerError, match="nothing.json: answers file not found"):
        score_study(study, [study / "nothing.json"])
    with pytest.raises(AnswerError, match="answers: answers is not a regular file"):
        score_study(study, [study / "answers"])


def test_size_limit_is_checked_before_reading(tmp_path):
    study = make_study(tmp_path / "study")
    big = study / "answers" / "answers_big.json"
    with open(big, "wb") as f:  # a sparse 1 GB file: refused by its size, never read into memory
        f.truncate(1_000_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(AnswerError, match=r"answers_big.json: answers file of 1000000000 bytes is larger"):
            score_study(study)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, peak
    key = StudyKey.load(study / "key.json")
    assert len(load_answers([study / "answers" / "answers_good.json"], key, max_bytes=10_000)) == 3
    with pytest.raises(AnswerError, match="larger than the limit of 10 bytes"):
        load_answers([study / "answers" / "answers_good.json"], key, max_bytes=10)


def _key_with(edit: Callable[[dict], object]) -> bytes:
    data = {"study_id": STUDY_ID, "methods": ["3D"], "trials": [asdict(t) for t in TRIALS.values()]}
    out = edit(data)
    return as_bytes(data if out is None else out)


# name: (content of key.json, text the message must hold)
KEY_CASES = {
    "missing-trials": (_key_with(lambda d: d.pop("trials") and None), "not a reader-study key (KeyError('trials'))"),
    "trial-id-is-a-list": (_key_with(lambda d: d["trials"][0].update(id=["t"])), "not a reader-study key"),
    "trial-is-a-string": (_key_with(lambda d: d["trials"].append("t9")), "not a reader-study key"),
    "trial-extra-field": (_key_with(lambda d: d["trials"][0].update(x=1)), "not a reader-study key"),
    "study-id-is-a-number": (_key_with(lambda d: d.update(study_id=5)), "must be strings"),
    "method-is-null": (_key_with(lambda d: d.update(methods=[None])), "must be strings"),
    "duplicate-trial": (_key_with(lambda d: d["trials"].append(d["trials"][0])), "trial ids are not unique"),
    "nested": (b"[" * 100_000, "nested too deeply"),
    "array": (b"[]", "expected an object"),
}


@pytest.mark.parametrize("case", sorted(KEY_CASES))
def test_bad_key_is_refused_with_its_name(tmp_path, case):
    content, message = KEY_CASES[case]
    study = make_study(tmp_path / "study")
    (study / "key.json").write_bytes(content)
    with pytest.raises(AnswerError) as err:
        score_study(study)
    text = str(err.value)
    assert text.startswith(f"{study / 'key.json'}: ") and message in text and "\n" not in text, text
