"""The index page of review sheets: one row per case with its sheet's thumbnail, its name and its metrics."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from mr2ct.io.atomic import atomic_write_text

__all__ = ["write_index"]

_STYLE = (
    "body{font-family:sans-serif;background:#181818;color:#ddd}a{color:#f0c850}table{border-collapse:collapse}"
    "th,td{padding:4px 10px;border-bottom:1px solid #333;text-align:left}img{max-width:480px;max-height:320px}"
)


def write_index(
    path: Path, cases: Sequence[tuple[str, str]], metrics: tuple[list[str], dict] | None, notes: Sequence[str]
) -> Path:
    """``index.html``: one row per ``(case, sheet path relative to the index)``: thumbnail, name and metrics."""
    names, values = metrics or ([], {})
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["sheet", "case", *names])
    rows = []
    for case, sheet in cases:
        href = html.escape(quote(sheet))
        cells = [
            f'<a href="{href}"><img src="{href}" alt="{html.escape(case)}" loading="lazy"></a>',
            f'<a href="{href}">{html.escape(case)}</a>',
            *(html.escape(values.get(case, {}).get(n) or "\u2013") for n in names),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    text = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8"><title>Review sheets</title>',
            f"<style>{_STYLE}</style></head><body>",
            "<h1>Review sheets</h1>",
            *(f"<p>{html.escape(note)}</p>" for note in notes),
            f"<table><thead><tr>{head}</tr></thead><tbody>",
            *rows,
            "</tbody></table></body></html>",
            "",
        ]
    )
    return atomic_write_text(path, text)
