"""Reproduce the paper's comparison: train every method on a task, evaluate on held-out videos, and write
the paper's table (ours beside the paper's numbers) and a Figure 6-style picture.

    python scripts/reproduce.py --task vmnist --methods 3d random sequential seq_const --preset quick

Each method is trained and then evaluated by the task's bundle (``train.json`` + ``quick.json`` for the quick
preset, then ``evaluate.json``, with the method as an override) through MONAI's ``ConfigWorkflow``, so the runs
are exactly what ``python -m monai.bundle run training`` and ``run evaluating`` do; the table is read from each
evaluation's report (``report/metrics.json``). Results go to ``--output`` (default
``runs/reproduce_<task>_<preset>``): ``table.md``, ``table.csv``, ``results.json``, ``figure.png`` and one folder
per method with its weights, logs and report.

With several seeds (``--seeds 0 1 2``) every method is trained and evaluated once per seed (the seed sets the
data split, the initial weights and the data order), each seed's run in ``seed_<s>/`` as above, and the tables
in ``--output`` show per metric the mean over seeds with the spread over seeds (sample standard deviation,
ddof 1) beside the per-video sigma (the mean over seeds of each run's standard deviation over held-out videos).

With ``--curve N`` every method is also evaluated on the held-out set every ``N`` iterations, from the training
checkpoints (``checkpoint_<iteration>.pt``, all kept; the generator of each is evaluated by the same evaluation
workflow in ``<method>/curve/iteration_<i>/``): ``curves.csv`` (method, seed, iteration, metric, value: the mean
over held-out videos) and ``curves.png`` (each metric against the iteration, one line per method: the mean over
seeds, shaded over the range of the seeds).

With ``--resume`` a run that was stopped goes on where it stopped: a method that finished in ``--output``
(``<method>/comparison.json``) with the same settings and bundle configs is read back instead of trained again, and
an unfinished training resumes from its latest checkpoint (``python -m monai.bundle run training ... --resume
true``); a method folder that holds a run with other settings is an error, never overwritten, and so is an
``--output`` that holds a run of the other layout (one seed / several seeds). Code changes are not detected: after
changing the code, use a new ``--output``.
"""

from __future__ import annotations

from mr2ct.reproduce.command import main
from mr2ct.reproduce.comparison import (
    evaluate_curve,
    evaluate_method,
    matched_2d_widths,
    run_comparison,
    run_seeds,
    train_method,
)
from mr2ct.reproduce.curves import curve_rows, write_curves
from mr2ct.reproduce.tables import format_mean_sigma, seed_orderings, summarise_seeds, table_decimals
from mr2ct.reproduce.tasks import PRESETS, TASKS, Task

__all__ = [
    "PRESETS",
    "TASKS",
    "Task",
    "curve_rows",
    "evaluate_curve",
    "evaluate_method",
    "format_mean_sigma",
    "main",
    "matched_2d_widths",
    "run_comparison",
    "run_seeds",
    "seed_orderings",
    "summarise_seeds",
    "table_decimals",
    "train_method",
    "write_curves",
]
