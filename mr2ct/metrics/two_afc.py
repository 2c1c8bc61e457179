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
are JSON files ``{"study_id", "reader", "answers": [{"trial", "choice": "left" | "right"}, ...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mr2ct.io.atomic import atomic_write_text

__all__ = [
    "REAL",
    "AnswerError",
    "Judgement",
    "PreferenceRow",
    "StudyKey",
    "Trial",
    "format_preference_table",
    "load_answers",
    "preference_table",
]

REAL = "real"
CHOICES = ("left", "right")


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
        payload = {"study_id": self.study_id, "methods": list(self.methods),
                   "trials": [asdict(t) for t in self.trials.values()]}
        return atomic_write_text(path, json.dumps(payload, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> StudyKey:
        """Read a key written by :meth:`save`; :class:`AnswerError` if it is missing or malformed."""
        data = _read_json(path, "study key")
        try:
            trials = [Trial(**t) for t in data["trials"]]
            key = cls(str(data["study_id"]), tuple(data["methods"]), {t.id: t for t in trials})
        except (KeyError, TypeError) as err:
            raise AnswerError(path, f"not a reader-study key ({err!r}).") from None
        if len(key.trials) != len(trials):
            raise AnswerError(path, "trial ids are not unique.")
        return key


def _read_json(path: str | Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise AnswerError(path, f"{what} file not found.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AnswerError(path, f"not a JSON {what} file ({err}).") from None
    if not isinstance(data, dict):
        raise AnswerError(path, f"not a JSON {what} file (expected an object).")
    return data


def load_answers(paths: Iterable[str | Path], key: StudyKey) -> list[Judgement]:
    """Read readers' answer files and turn them into judgements, checking them against ``key``.

    Raises:
        AnswerError: a file that is missing or not JSON, belongs to another study, answers an unknown trial,
            answers a trial twice, has a choice other than "left"/"right", or repeats a reader of another file.
    """
    judgements: list[Judgement] = []
    readers: dict[str, Path] = {}
    for path in map(Path, paths):
        data = _read_json(path, "answers")
        if data.get("study_id") != key.study_id:
            raise AnswerError(path, f"answers for study {data.get('study_id')!r}, but the key is for {key.study_id!r}.")
        reader = str(data.get("reader", "")).strip()
        if not reader:
            raise AnswerError(path, "no reader name.")
        if reader in readers:
            raise AnswerError(path, f"reader {reader!r} already answered in {readers[reader]}.")
        readers[reader] = path
        answers = data.get("answers")
        if not isinstance(answers, list):
            raise AnswerError(path, "no 'answers' list.")
        seen: set[str] = set()
        for answer in answers:
            trial_id, choice = (answer.get("trial"), answer.get("choice")) if isinstance(answer, dict) else (None, None)
            if trial_id not in key.trials:
                raise AnswerError(path, f"answer for unknown trial {trial_id!r}.")
            if trial_id in seen:
                raise AnswerError(path, f"trial {trial_id!r} answered twice.")
            if choice not in CHOICES:
                raise AnswerError(path, f"trial {trial_id!r}: choice {choice!r} is not 'left' or 'right'.")
            seen.add(trial_id)
            trial = key.trials[trial_id]
            winner, loser = (trial.left, trial.right) if choice == "left" else (trial.right, trial.left)
            judgements.append(Judgement(reader, trial_id, winner, loser))
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


def preference_table(judgements: Sequence[Judgement], methods: Sequence[str], num_bootstrap: int = 1000,
                     seed: int = 0) -> list[PreferenceRow]:
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
    for name, keep in (("methods", lambda j: REAL not in (j.winner, j.loser)),
                       ("real", lambda j: REAL in (j.winner, j.loser))):
        chosen = [j for j in judgements if keep(j)]
        winner = np.array([index[j.winner] for j in chosen], dtype=int)
        loser = np.array([index[j.loser] for j in chosen], dtype=int)
        draws = rng.integers(0, len(chosen), size=(num_bootstrap, len(chosen))) if chosen else np.zeros((0, 0), int)
        groups[name] = (winner, loser, draws)
    rows = []
    for method in methods:
        stats = []
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
        lines.append(f"| {r.method} | {cell(r.p_over_methods, r.sigma_over_methods, r.n_over_methods)} "
                     f"| {cell(r.p_over_real, r.sigma_over_real, r.n_over_real)} |")
    lines += ["", "P(A ≺ B): how often a method's output was chosen as more realistic than another method's for the "
              "same input; P(A ≺ GT): how often it was chosen over the real image; ± one bootstrap sigma "
              "(the paper's last row shows 2 sigma)."]
    return "\n".join(lines)
