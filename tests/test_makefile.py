"""The Makefile's demo reads the folders the quick preset writes."""

from __future__ import annotations

import re
from pathlib import Path

from mr2ct.bundle import load_config
from mr2ct.data import validation_phantom

REPO = Path(__file__).resolve().parents[1]


def _make_variable(name: str) -> str:
    match = re.search(rf"^{name} := (.+)$", (REPO / "Makefile").read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert match, f"Makefile has no {name}"
    return match.group(1).strip()


def test_demo_phantom_is_the_quick_presets_test_phantom_and_nothing_else():
    """The demo's sheets and study take the test MR/CT folders of exactly one phantom: the quick training run's
    (a glob also matched the validation subjects' phantom beside it and broke `make demo`)."""
    quick = REPO / "bundles/mrct_cyclegan3d/configs/quick.json"
    config = load_config("mrct_cyclegan3d", "train", files=[quick])
    phantom = config.get_parsed_content("phantom")
    folder = Path(_make_variable("PHANTOM"))
    assert not any(c in str(folder) for c in "*?["), "PHANTOM must name one folder, not a pattern"
    assert folder.parent == Path("bundles/mrct_cyclegan3d/data")
    assert folder.name == phantom.folder_name()
    assert folder.name != validation_phantom(phantom, config["num_val_cases"]).folder_name()
