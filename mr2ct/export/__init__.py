"""Exports: pictures, animations and evaluation reports."""

from __future__ import annotations

from .panels import save_frame_panel, save_midplane_panel, save_side_by_side_gif, to_display
from .report import TranslationReport, plot_loss_curves, summarize_metric_details

__all__ = [
    "TranslationReport",
    "plot_loss_curves",
    "save_frame_panel",
    "save_midplane_panel",
    "save_side_by_side_gif",
    "summarize_metric_details",
    "to_display",
]
