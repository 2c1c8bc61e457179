"""The layered configs stay layered: bundles hold their task only, and no config is a copy of another."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from conftest import REPO

# the bundles' config files only: a bundle's data/ and models/ folders hold generated JSON (meta.json) too
CONFIGS = sorted(p for p in (REPO / "bundles").glob("*/configs/**/*.json") if p.name != "metadata.json") + sorted(
    (REPO / "transforms").glob("*.json")
)
MAX_SHARED_LINES = 10


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


def longest_shared_run(a: list[str], b: list[str]) -> int:
    """The longest run of identical consecutive lines of ``a`` and ``b`` (brace-only lines end a run)."""
    best, previous = 0, [0] * (len(b) + 1)
    for line in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b):
            if line == other and line not in ("{", "}", "},", "]", "],", ""):
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def test_longest_shared_run():
    assert longest_shared_run(["a", "b", "c", "x"], ["y", "a", "b", "c"]) == 3
    assert longest_shared_run(["a", "}", "a"], ["a", "}", "a"]) == 1


def test_no_two_configs_share_more_than_ten_lines():
    """What two bundles share belongs in ``bundles/common/configs/``, not in copies."""
    copies = [
        f"{a.relative_to(REPO)} ~ {b.relative_to(REPO)}: {n} lines"
        for a, b in itertools.combinations(CONFIGS, 2)
        if (n := longest_shared_run(_lines(a), _lines(b))) > MAX_SHARED_LINES
    ]
    assert not copies, copies


@pytest.mark.parametrize(
    "train", sorted((REPO / "bundles").glob("*/configs/train.json")), ids=lambda p: p.parent.parent.name
)
def test_bundle_train_configs_hold_their_task_only(train):
    config = json.loads(train.read_text(encoding="utf-8"))
    if train.parent.parent.name != "common":
        assert len(_lines(train)) <= 80
        assert config["initialize"][0].startswith("$mr2ct.bundle.complete(")  # layered on the common configs
