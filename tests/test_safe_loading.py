"""Loading what a file says, safely: every ``torch.load`` unpickles tensors only (``weights_only=True``), and the
torch versions that setup.cfg allows are the ones the suite ran on."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO


def torch_loads(path: Path) -> list[tuple[int, bool]]:
    """``(line, safe)`` of every ``torch.load(...)`` call in a Python file; safe: ``weights_only=True`` given."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "torch"
        ):
            safe = any(
                k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            calls.append((node.lineno, safe))
    return calls


def test_every_torch_load_is_weights_only():
    files = [p for folder in ("mr2ct", "tests", "scripts") for p in sorted((REPO / folder).rglob("*.py"))]
    found = {p: torch_loads(p) for p in files}
    assert sum(len(calls) for calls in found.values()) >= 10  # the scan sees the calls that exist
    unsafe = [f"{p.relative_to(REPO)}:{line}" for p, calls in found.items() for line, safe in calls if not safe]
    assert unsafe == [], "torch.load without weights_only=True (unpickles arbitrary objects): " + ", ".join(unsafe)
    for config in sorted((REPO / "bundles").rglob("*.json")):  # "$torch.load(...)" expressions in bundles
        assert "torch.load(" not in config.read_text(encoding="utf-8"), config


def test_the_scan_catches_an_unsafe_load(tmp_path):
    code = tmp_path / "m.py"
    code.write_text(
        "import torch\na = torch.load('x')\nb = torch.load('y', weights_only=True)\n"
        "c = torch.load('z', weights_only=False)\n",
        encoding="utf-8",
    )
    assert torch_loads(code) == [(2, False), (3, True), (4, False)]


def test_weights_only_refuses_a_pickled_object(tmp_path):
    """What weights_only guards against: a checkpoint that runs code when unpickled."""
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.ones(2), "payload": _Payload()}, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)


class _Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_torch_bound_is_what_the_suite_ran_on():
    """setup.cfg allowed torch>=2.2, where torch.load's default unpickled anything; the suite runs on one version
    here (torch 2.13: other builds need several GB of CUDA packages), so that is the lowest version claimed."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    requirements = [Requirement(line) for line in cfg["options"]["install_requires"].split("\n") if line.strip()]
    (spec,) = [r.specifier for r in requirements if r.name == "torch"]
    tested = Version(Version(torch.__version__).base_version)
    assert spec.contains(tested), (spec, tested)
    lowest = Version(f"{tested.major}.{tested.minor}")
    assert not spec.contains(Version(f"{tested.major}.{tested.minor - 1}.99")) and spec.contains(lowest), spec
