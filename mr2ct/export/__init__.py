"""Exports: pictures, animations, evaluation reports, review sheets, DICOM series and reader studies."""

from __future__ import annotations

from .dicom import export_dicom, write_dicom_series
from .panels import save_frame_panel, save_side_by_side_gif
from .render import midplanes, save_midplane_panel, video_sheet, volume_sheet
from .report import TranslationReport, plot_loss_curves, summarize_metric_details
from .sheets import write_review_sheets
from .windows import CT_WINDOWS, apply_window, to_display

__all__ = [
    "CT_WINDOWS",
    "TranslationReport",
    "apply_window",
    "export_dicom",
    "midplanes",
    "plot_loss_curves",
    "save_frame_panel",
    "save_midplane_panel",
    "save_side_by_side_gif",
    "summarize_metric_details",
    "to_display",
    "video_sheet",
    "volume_sheet",
    "write_dicom_series",
    "write_review_sheets",
]
