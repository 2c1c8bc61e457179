"""The paper's human evaluation (its Table 3): two-alternative forced choice (2AFC) between translations.

Each trial shows a reader two images made from the *same* input, one on the left and one on the right, and
asks which is more realistic. A trial compares two methods, or a method with the real image of the target
domain (the method name :data:`REAL`). From the readers' choices:

- ``P(A < B)``: for each method, the fraction of its method-versus-method judgements in which it was
  preferred (the paper's "probability of users preferring each method over other methods");
- ``P(A < GT)``: the fraction of its method-versus-real judgements in which it was preferred over the real one;
- sigma: bootstrap standard deviation of each probability, resampling the judgements (reader x trial) with
  replacement (METRICS.md: 1000+ draws).

A study is described by its *key* (``key.json``, written by :mod:`mr2ct.export.reader_study`, kept away from
the readers): the study id and, per trial id, the case and the methods shown left and right. Readers' answers
are JSON files ``{"study_id", "reader", "answers": [{"trial", "choice": "left" | "right"}, ...]}`` of at most
:data:`MAX_JSON_BYTES`; :func:`check_answers` holds the rules an answers object must meet, for the scorer and for
the study server alike.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mr2ct.io.atomic import atomic_write_text

__all__ = [
    "REAL",
    "AnswerError",
    "CHOICES",
    "Judgement",
    "MAX_JSON_BYTES",
    "MAX_KEY_BYTES",
    "MAX_READER_LENGTH",
    "PreferenceRow",
    "StudyKey",
    "Trial",
    "check_answers",
    "format_preference_table",
    "load_answers",
    "parse_json",
    "preference_table",
    "read_json",
    "reader_name_problem",
]

REAL = "real"
CHOICES = ("left", "right")
MAX_JSON_BYTES = 10_000_000
"""Largest answers file read or accepted (bytes); a reader's answers to 10 000 trials take about 0.6 MB."""
MAX_KEY_BYTES = 100_000_000
"""Largest study key read (bytes)."""
MAX_READER_LENGTH = 100
"""Longest reader name (characters, after stripping)."""


class AnswerError(ValueError):
    """A key or answers file that cannot be scored; the message names the file and the problem."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Trial:
    """One blinded comparison: the methods whose outputs for ``case`` are shown on the left and on the right."""

    id: str
    case: str
    left: str
    right: str


@dataclass(frozen=True)
class Judgement:
    """One reader's choice in one trial: ``winner`` was preferred over ``loser``."""

    reader: str
    trial: str
    winner: str
    loser: str


@dataclass(frozen=True)
class StudyKey:
    """The unblinding key of a reader study: its id, the methods compared and every trial."""

    study_id: str
    methods: tuple[str, ...]
    trials: dict[str, Trial]

    def save(self, path: str | Path) -> Path:
        """Write the key as JSON (atomically: temporary name, then rename)."""
        path = Path(path)
        payload = {
            "study_id": self.study_id,
            "methods": list(self.methods),
            "trials": [asdict(t) for t in self.trials.values()],
        }
        return atomic_write_text(path, json.dumps(payload, indent=1))

    @classmethod
    def load(cls, path: str | Path, max_bytes: int = MAX_KEY_BYTES) -> StudyKey:
        """Read a key written by :meth:`save`; :class:`AnswerError` if it is missing, malformed or larger than
        ``max_bytes``."""
        data = read_json(path, "study key", max_bytes)
        try:
            trials = [Trial(**t) for t in data["trials"]]
            key = cls(data["study_id"], tuple(data["methods"]), {t.id: t for t in trials})
        except (KeyError, TypeError) as err:
            raise AnswerError(path, f"not a reader-study key ({_shown(err, 200)}).") from None
        texts = [key.study_id, *key.methods, *(v for t in trials for v in astuple(t))]
        if not all(isinstance(v, str) for v in texts):
            raise AnswerError(path, "not a reader-study key (ids, methods and cases must be strings).")
        if len(key.trials) != len(trials):
            raise AnswerError(path, "trial ids are not unique.")
        return key


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (error messages quote what a file holds)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_json(raw: bytes, path: str | Path, what: str) -> dict:
    """The JSON object in ``raw`` (UTF-8); :class:`AnswerError` naming ``path`` for anything else.

    Refused: bytes that are not UTF-8, invalid JSON, ``NaN``/``Infinity``, nesting deeper than Python's recursion
    limit, and a top level that is not an object.
    """

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not a JSON value")

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    except UnicodeDecodeError as err:
        raise AnswerError(path, f"not a JSON {what} file (not UTF-8: {err}).") from None
    except RecursionError:
        raise AnswerError(path, f"not a JSON {what} file (nested too deeply).") from None
    except ValueError as err:  # json.JSONDecodeError, or NaN / Infinity
        raise AnswerError(path, f"not a JSON {what} file ({err}).") from None
    if not isinstance(data, dict):
        raise AnswerError(path, f"not a JSON {what} file (expected an object).")
    return data


def read_json(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """The JSON object of a key or answers file, read only if it is a regular file of at most ``max_bytes``.

    Raises:
        AnswerError: missing, not a regular file, too large, or not a JSON object (see :func:`parse_json`).
    """
    path = Path(path)
    if not path.is_file():
        raise AnswerError(path, f"{what} file not found." if not path.exists() else f"{what} is not a regular file.")
    size = path.stat().st_size
    if size > max_bytes:
        raise AnswerError(path, f"{what} file of {size} bytes is larger than the limit of {max_bytes} bytes.")
    with open(path, "rb") as f:
        raw = f.read(size + 1)  # not max_bytes + 1: read() allocates what it is asked for
    if len(raw) != size:
        raise AnswerError(path, f"{what} file changed while it was read.")
    return parse_json(raw, path, what)


def reader_name_problem(reader: Any) -> str | None:
    """Why ``reader`` cannot name a reader (None if it can): a string of 1 to :data:`MAX_READER_LENGTH` characters
    after stripping, with no control characters, that UTF-8 can encode."""
    if not isinstance(reader, str):
        return f"reader name {_shown(reader)} is not a string."
    name = reader.strip()
    if not name:
        return "no reader name."
    if len(name) > MAX_READER_LENGTH:
        return f"reader name of {len(name)} characters is longer than {MAX_READER_LENGTH}."
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return f"reader name {_shown(name)} holds control characters or unpaired surrogates."
    return None


def check_answers(data: Any, key: StudyKey, path: str | Path) -> tuple[str, list[Judgement]]:
    """The reader (name stripped) and judgements of one reader's answers object ``data`` (read from ``path``, or
    about to be saved there).

    Raises:
        AnswerError: naming ``path``: ``data`` is not an object, belongs to another study, has no valid reader
            name (see :func:`reader_name_problem`) or no answers list, answers an unknown trial or a trial twice,
            or has a choice other than "left"/"right".
    """
    if not isinstance(data, dict):
        raise AnswerError(path, "not a JSON answers object.")
    if data.get("study_id") != key.study_id:
        raise AnswerError(
            path, f"answers for study {_shown(data.get('study_id'))}, but the key is for {key.study_id!r}."
        )
    problem = reader_name_problem(data.get("reader", ""))
    if problem:
        raise AnswerError(path, problem)
    reader = data["reader"].strip()
    answers = data.get("answers")
    if not isinstance(answers, list):
        raise AnswerError(path, "no 'answers' list.")
    judgements, seen = [], set()
    for number, answer in enumerate(answers):
        if not isinstance(answer, dict):
            raise AnswerError(path, f"answer {number} is {_shown(answer)}, not an object with 'trial' and 'choice'.")
        trial_id, choice = answer.get("trial"), answer.get("choice")
        if not isinstance(trial_id, str) or trial_id not in key.trials:
            raise AnswerError(path, f"answer for unknown trial {_shown(trial_id)}.")
        if trial_id in seen:
            raise AnswerError(path, f"trial {trial_id!r} answered twice.")
        if not isinstance(choice, str) or choice not in CHOICES:
            raise AnswerError(path, f"trial {trial_id!r}: choice {_shown(choice)} is not 'left' or 'right'.")
        seen.add(trial_id)
        trial = key.trials[trial_id]
        winner, loser = (trial.left, trial.right) if choice == "left" else (trial.right, trial.left)
        judgements.append(Judgement(reader, trial_id, winner, loser))
    return reader, judgements


def load_answers(paths: Iterable[str | Path], key: StudyKey, max_bytes: int = MAX_JSON_BYTES) -> list[Judgement]:
    """Read readers' answer files and turn them into judgements, checking them against ``key``.

    Raises:
        AnswerError: a file that is missing, larger than ``max_bytes`` or not JSON, fails :func:`check_answers`,
            or repeats a reader of another file.
    """
    judgements: list[Judgement] = []
    readers: dict[str, Path] = {}
    for path in map(Path, paths):
        reader, found = check_answers(read_json(path, "answers", max_bytes), key, path)
        if reader in readers:
            raise AnswerError(path, f"reader {reader!r} already answered in {readers[reader]}.")
        readers[reader] = path
        judgements += found
    return judgements


@dataclass(frozen=True)
class PreferenceRow:
    """One method's line of Table 3 (NaN where the method had no judgement of that kind)."""

    method: str
    p_over_methods: float
    sigma_over_methods: float
    n_over_methods: int
    p_over_real: float
    sigma_over_real: float
    n_over_real: int


def _win_rates(winner: np.ndarray, loser: np.ndarray, draws: np.ndarray, method: int) -> tuple[float, np.ndarray, int]:
    """Observed win rate of ``method``, its bootstrap replicates over ``draws`` (index rows) and its count."""
    wins, seen = winner == method, (winner == method) | (loser == method)
    n = int(seen.sum())
    if n == 0:
        return float("nan"), np.full(len(draws), np.nan), 0
    boot_seen = seen[draws].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = np.where(boot_seen > 0, wins[draws].sum(axis=1) / boot_seen, np.nan)
    return float(wins.sum() / n), boot, n


def preference_table(
    judgements: Sequence[Judgement], methods: Sequence[str], num_bootstrap: int = 1000, seed: int = 0
) -> list[PreferenceRow]:
    """Table 3: per method, ``P(A < B)`` and ``P(A < GT)`` with their bootstrap sigma and judgement counts.

    Model-versus-model and model-versus-real judgements are bootstrapped separately, each resampled
    ``num_bootstrap`` times with replacement (seeded); sigma is the standard deviation of the replicates.
    """
    if num_bootstrap < 2:
        raise ValueError(f"num_bootstrap must be at least 2, got {num_bootstrap}.")
    index = {m: i for i, m in enumerate([*methods, REAL])}
    unknown = {m for j in judgements for m in (j.winner, j.loser)} - set(index)
    if unknown:
        raise ValueError(f"judgements name methods {sorted(unknown)} that are not among {list(methods)}.")
    rng = np.random.default_rng(seed)
    groups = {}
    for name, keep in (
        ("methods", lambda j: REAL not in (j.winner, j.loser)),
        ("real", lambda j: REAL in (j.winner, j.loser)),
    ):
        chosen = [j for j in judgements if keep(j)]
        winner = np.array([index[j.winner] for j in chosen], dtype=int)
        loser = np.array([index[j.loser] for j in chosen], dtype=int)
        draws = rng.integers(0, len(chosen), size=(num_bootstrap, len(chosen))) if chosen else np.zeros((0, 0), int)
        groups[name] = (winner, loser, draws)
    rows = []
    for method in methods:
        stats: list = []  # p, sigma, n per kind of judgement
        for name in ("methods", "real"):
            p, boot, n = _win_rates(*groups[name], index[method])
            sigma = float(np.nanstd(boot)) if n and np.isfinite(boot).any() else float("nan")
            stats += [p, sigma, n]
        rows.append(PreferenceRow(method, *stats))
    return rows


def format_preference_table(rows: Sequence[PreferenceRow], title: str = "") -> str:
    """The table as Markdown, in the paper's layout (probabilities with their bootstrap sigma and counts)."""

    def cell(p: float, sigma: float, n: int) -> str:
        return "–" if n == 0 else f"{p:.2f} ± {sigma:.2f} (n={n})"

    lines = [f"### {title}", ""] if title else []
    lines += ["| Method | P(A ≺ B) | P(A ≺ GT) |", "| --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r.method} | {cell(r.p_over_methods, r.sigma_over_methods, r.n_over_methods)} "
            f"| {cell(r.p_over_real, r.sigma_over_real, r.n_over_real)} |"
        )
    lines += [
        "",
        "P(A ≺ B): how often a method's output was chosen as more realistic than another method's for the "
        "same input; P(A ≺ GT): how often it was chosen over the real image; ± one bootstrap sigma "
        "(the paper's last row shows 2 sigma).",
    ]
    return "\n".join(lines)
