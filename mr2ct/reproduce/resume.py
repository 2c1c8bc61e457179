"""What ``--resume`` reads back: a method folder's finished run or its request, checked against the run wanted, and
the output folder's layout (one seed or several)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mr2ct.engine import latest_checkpoint

__all__ = ["ENTRY_FILE", "REQUEST_FILE", "as_json", "check_layout", "configs_digest", "finished_or_resumable"]

#: a method's finished run in its folder: its settings, the bundle configs' digest, its result and evaluation
ENTRY_FILE = "comparison.json"
#: the settings of a method's training, written before it starts (``--resume`` checks them)
REQUEST_FILE = "request.json"


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (paths as strings, tuples as lists), so that settings compare equal."""
    return json.loads(json.dumps(value, default=str))


def configs_digest(config: Any, *files: Path) -> str:
    """SHA-256 of a bundle's merged config and of ``files``' text: a finished run is reused only while they are
    unchanged."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8"))
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def finished_or_resumable(folder: Path, run: dict, digest: str) -> tuple[dict | None, bool]:
    """For ``--resume``: ``(the finished entry, False)`` when ``folder`` holds a finished run of ``run``'s settings
    and configs, ``(None, True)`` when it holds a training of them with a checkpoint to resume from, ``(None,
    False)`` when it holds neither. A folder whose run has other settings raises ``ValueError`` naming the differing
    keys: its weights are never mixed with or overwritten by another run's."""
    wanted = as_json(run)
    entry = _read_held(folder / ENTRY_FILE)
    if entry is not None:
        _check_same_run(folder, wanted, entry["run"], same_configs=entry.get("configs") == digest)
        if "curve" in entry["result"]:  # JSON keys are strings; the curve's are iterations
            entry["result"]["curve"] = {int(i): v for i, v in entry["result"]["curve"].items()}
        return entry, False
    request = _read_held(folder / REQUEST_FILE)
    if request is not None:
        _check_same_run(folder, wanted, request)
        return None, latest_checkpoint(run["ckpt_dir"]) is not None
    return None, False


def _read_held(path: Path) -> dict | None:
    """The JSON a method folder holds in ``path``, None if there is no such file; unreadable: ``ValueError``."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read ({error}); move the folder away or use another --output.") from None


def _check_same_run(folder: Path, wanted: dict, held: dict, same_configs: bool = True) -> None:
    """Raise ``ValueError`` naming the settings (or the configs) in which ``folder``'s run differs from ``wanted``."""
    differing = sorted(k for k in {*wanted, *held} if wanted.get(k) != held.get(k))
    if not differing and not same_configs:
        differing = ["the bundle's configs"]
    if differing:
        raise ValueError(
            f"{folder} holds a run with other settings ({', '.join(differing)}); --resume would mix them: use "
            "another --output, or move the folder away."
        )


def check_layout(output: Path, several_seeds: bool) -> None:
    """Refuse an ``output`` that holds a run of the other layout before anything is trained: a one-seed run keeps
    its method folders in ``output``, a run of several seeds each seed in ``output/seed_<s>``, and both write their
    tables to ``output``, so mixing them would retrain what is there and write one run's tables over the other's."""
    seed_folders = sorted(p.name for p in output.glob("seed_*") if p.is_dir())
    method_folders = sorted(p.parent.name for p in output.glob(f"*/{REQUEST_FILE}"))
    if several_seeds and method_folders:
        raise ValueError(
            f"{output} holds a one-seed run ({', '.join(method_folders)}); a run of several seeds keeps each seed in "
            "seed_<s>/ and would write its tables over that run's: use another --output."
        )
    if not several_seeds and seed_folders:
        raise ValueError(
            f"{output} holds a run of several seeds ({', '.join(seed_folders)}); to add methods to one of its seeds "
            f"give --output {output}/seed_<s> (with --resume), otherwise another --output."
        )
