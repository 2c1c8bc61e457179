"""Batch translation of whole volumes: one output file per input, failures reported per volume.

A MONAI ``SupervisedEvaluator`` whose iteration translates one volume (any size: the inferer is usually a
``SlidingWindowInferer`` with blended overlaps), maps it back to the input's grid with the config's
postprocessing (``Invertd``, intensity back to HU...) and writes it atomically. A volume that cannot be read
(the dataset yields ``{"source", "error"}`` for it, see :class:`mr2ct.data.SkipFailuresDataset`) or fails to
translate is recorded with its reason and the batch goes on; existing outputs are kept unless ``overwrite``, a
failed write leaves neither the output nor a temporary file, and two inputs whose outputs would have the same
name (``a.nii`` and ``a.nii.gz``) never overwrite each other.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from monai.data import decollate_batch
from monai.engines import SupervisedEvaluator
from monai.inferers import Inferer
from monai.utils import convert_to_numpy

from mr2ct.engine.performance import amp_dtype as _amp_dtype
from mr2ct.io.atomic import atomic_file
from mr2ct.io.nifti import save_volume, write_nifti
from mr2ct.io.readers import volume_stem
from mr2ct.metrics.synthrad import body_mask

__all__ = ["TranslationResult", "VolumeTranslator"]

logger = logging.getLogger(__name__)


@dataclass
class TranslationResult:
    """What happened to one input: ``status`` is ``translated``, ``skipped`` (output exists) or ``failed``;
    ``mean_uncertainty``: the mean of its confidence map inside the translation's foreground, when one was written."""

    source: str
    output: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    mean_uncertainty: float | None = None


class VolumeTranslator(SupervisedEvaluator):
    """Translate every volume a loader yields and write ``<output_dir>/<name><postfix>.nii.gz`` for each.

    Args:
        device: where the network runs.
        val_data_loader: batches of one volume: ``{"image": (1, C, ...), "source": [path]}``, or
            ``{"source": [path], "error": [reason]}`` for a volume that could not be loaded.
        network: the generator.
        output_dir: folder of the outputs (created).
        postfix: appended to the input's name, e.g. ``"_synthct"``. One channel is written as a 3D NIfTI, several
            (e.g. RGB videos) as ``(X, Y, Z, C)``.
        inferer: e.g. ``SlidingWindowInferer(roi_size, overlap=0.25, mode="gaussian")``.
        postprocessing: a dictionary transform applied per volume to ``{"image", "pred"}`` before writing
            (e.g. intensity back to HU, then ``Invertd`` to the input's grid); the written geometry is
            ``pred``'s affine.
        overwrite: replace existing outputs (default: keep them and report the volume as skipped).
        output_dtype: voxel type of the written files.
        val_handlers: Ignite handlers (weights loader, progress bar...).
        amp: autocast the forward pass in ``amp_dtype``.
        amp_dtype: ``"bfloat16"`` (CPU and CUDA) or ``"float16"`` (CUDA only).
        uncertainty_postfix: when the postprocessed item holds an ``"uncertainty"`` map (e.g. the spread of
            :class:`~mr2ct.engine.AugmentationSpread`, split off by :class:`~mr2ct.transforms.SplitChannelsd`), it is
            written beside the output as ``<name><uncertainty_postfix>.nii.gz``, on the same grid.
        foreground_threshold: ``summary.csv`` gives the mean of the uncertainty map over the translation's
            foreground: its largest connected region above this value, holes filled (e.g. -500 HU for a synthetic
            CT); None: over the whole volume.
    """

    noun = "volume"  # what the summary counts

    def __init__(
        self,
        device: torch.device | str,
        val_data_loader,
        network: torch.nn.Module,
        output_dir: str | Path,
        postfix: str,
        inferer: Inferer,
        postprocessing: Callable | None = None,
        overwrite: bool = False,
        output_dtype: str = "float32",
        val_handlers: Sequence | None = None,
        amp: bool = False,
        amp_dtype: str = "bfloat16",
        uncertainty_postfix: str = "_uncertainty",
        foreground_threshold: float | None = None,
    ):
        super().__init__(
            device=torch.device(device),
            val_data_loader=val_data_loader,
            network=network,
            inferer=inferer,
            val_handlers=val_handlers,
            amp=amp,
            decollate=False,
        )
        self.amp_dtype = _amp_dtype(amp_dtype, device if amp else None)
        self.output_dir = Path(output_dir)
        self.postfix = postfix
        self.output_transform = postprocessing
        self.overwrite = overwrite
        self.output_dtype = output_dtype
        self.uncertainty_postfix = uncertainty_postfix
        self.foreground_threshold = foreground_threshold
        self.results: list[TranslationResult] = []
        self.add_event_handler(Events.STARTED, lambda _: self.results.clear())
        self.add_event_handler(Events.COMPLETED, lambda _: self.write_summary())

    def output_path(self, source: str) -> Path:
        """Where the translation of ``source`` (a file or a DICOM series folder) is written."""
        return self.output_dir / f"{volume_stem(source)}{self.postfix}.nii.gz"

    def uncertainty_path(self, source: str) -> Path:
        """Where the confidence map of ``source``'s translation is written (when there is one)."""
        return self.output_dir / f"{volume_stem(source)}{self.uncertainty_postfix}.nii.gz"

    def _translate(self, batchdata: dict) -> dict:
        inputs = batchdata["image"].to(self.state.device)
        with self.mode(self.network):
            with torch.autocast(self.state.device.type, dtype=self.amp_dtype, enabled=self.amp):
                pred = self.inferer(inputs, self.network)
        item = decollate_batch({"image": batchdata["image"], "pred": pred.float().cpu()})[0]
        return self.output_transform(item) if self.output_transform is not None else item

    def _mean_uncertainty(self, item: dict) -> float:
        """The mean of ``item["uncertainty"]`` over the foreground of ``item["pred"]`` (``foreground_threshold``)."""
        uncertainty = np.asarray(item["uncertainty"].detach().cpu(), dtype=np.float64)[0]
        if self.foreground_threshold is None:
            return float(uncertainty.mean())
        try:
            inside = body_mask(item["pred"][0], threshold=self.foreground_threshold, dilation=0)
        except ValueError:  # nothing above the threshold: no foreground
            return float("nan")
        return float(uncertainty[inside].mean())

    def _iteration(self, engine: SupervisedEvaluator, batchdata: dict) -> dict:
        source = str(batchdata["source"][0])
        output = self.output_path(source)
        start = time.perf_counter()
        clash = next((r.source for r in self.results if r.output == str(output)), None)
        if "error" in batchdata:
            result = TranslationResult(source, str(output), "failed", str(batchdata["error"][0]))
        elif clash is not None:
            result = TranslationResult(
                source,
                str(output),
                "failed",
                f"its output {output.name} is also the output of {clash}; rename one of the two inputs",
            )
        elif output.exists() and not self.overwrite:
            result = TranslationResult(source, str(output), "skipped", "output exists (pass --overwrite true)")
        else:
            try:
                item = self._translate(batchdata)
                mean_uncertainty = None
                if "uncertainty" in item:
                    self._save({"pred": item["uncertainty"]}, self.uncertainty_path(source))
                    mean_uncertainty = self._mean_uncertainty(item)
                self._save(item, output)
                result = TranslationResult(source, str(output), "translated", mean_uncertainty=mean_uncertainty)
            except Exception as e:  # one bad volume must not stop the batch: record it and go on
                result = TranslationResult(source, str(output), "failed", f"{type(e).__name__}: {e}")
        result.seconds = time.perf_counter() - start
        if result.status == "failed":
            logger.error(f"{source}: {result.reason}")
        self.results.append(result)
        return {"source": source, "status": result.status}

    def _save(self, item: dict, path: Path) -> None:
        """Write the ``(C, X, Y, Z)`` prediction ``item["pred"]`` carrying its affine, under a temporary name
        renamed when complete."""
        pred = item["pred"]
        if pred.shape[0] == 1:
            save_volume(pred, path, dtype=self.output_dtype)
        else:  # channels last, as NIfTI stores them
            write_nifti(path, np.moveaxis(convert_to_numpy(pred), 0, -1), pred.affine, dtype=self.output_dtype)

    def write_summary(self) -> Path:
        """Log the done / skipped / failed counts and write ``summary.csv`` beside the outputs."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / "summary.csv"
        with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            with_uncertainty = any(r.mean_uncertainty is not None for r in self.results)
            writer.writerow(
                ["source", "output", "status", "reason", "seconds"] + (["mean_uncertainty"] if with_uncertainty else [])
            )
            for r in self.results:
                extra = (
                    []
                    if not with_uncertainty
                    else [f"{r.mean_uncertainty:.2f}" if r.mean_uncertainty is not None else ""]
                )
                writer.writerow([r.source, r.output, r.status, r.reason, f"{r.seconds:.2f}", *extra])
        counts = {s: sum(r.status == s for r in self.results) for s in ("translated", "skipped", "failed")}
        logger.info(
            f"{len(self.results)} {self.noun}(s): "
            + ", ".join(f"{n} {s}" for s, n in counts.items())
            + f"; summary: {path}"
        )
        for r in self.results:
            if r.status == "failed":
                logger.info(f"  failed: {r.source}: {r.reason}")
        return path

    def raise_on_failures(self) -> None:
        """Exit with status 1 and a one-line message if any volume failed (for scripts and CI)."""
        failed = [r for r in self.results if r.status == "failed"]
        if failed:
            raise SystemExit(
                f"{len(failed)} of {len(self.results)} {self.noun}(s) failed; see {self.output_dir / 'summary.csv'}"
            )
