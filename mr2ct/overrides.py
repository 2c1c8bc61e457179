"""Bundle config overrides given on a command line: ``--key value`` pairs, as ``mr2ct train`` and
``mr2ct bench data`` pass them to ``monai.bundle``."""

from __future__ import annotations

import ast
from collections.abc import Sequence

__all__ = ["parse_overrides"]


def parse_overrides(extra: Sequence[str]) -> dict[str, object]:
    """``["--key", "value", "--flag", ...]`` as ``{"key": value, "flag": True}`` (values as Python literals when
    they parse as one, else text); a clear error for anything else."""
    overrides: dict[str, object] = {}
    i = 0
    while i < len(extra):
        key = extra[i]
        if not key.startswith("--") or len(key) == 2:
            raise SystemExit(f"mr2ct: expected --key [value], got {key!r}")
        if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            overrides[key[2:]] = _literal(extra[i + 1])
            i += 2
        else:
            overrides[key[2:]] = True
            i += 1
    return overrides


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
