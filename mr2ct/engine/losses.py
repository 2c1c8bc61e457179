"""Loss terms of the CycleGAN objective beyond MONAI's adversarial loss."""

from __future__ import annotations

import torch
from monai.losses import PatchAdversarialLoss

__all__ = ["ADVERSARIAL_LOSSES", "adversarial_loss", "temporal_const_loss"]

ADVERSARIAL_LOSSES = {"lsgan": "least_squares", "bce": "bce", "hinge": "hinge"}


def adversarial_loss(kind: str = "lsgan") -> PatchAdversarialLoss:
    """MONAI ``PatchAdversarialLoss`` for ``kind``.

    ``"lsgan"`` is CycleGAN's least-squares loss (without the LeakyReLU MONAI would otherwise apply to the
    logits); ``"bce"`` is the paper's log-likelihood loss (sigmoid + binary cross-entropy); ``"hinge"``.
    """
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(ADVERSARIAL_LOSSES)}.")
    return PatchAdversarialLoss(reduction="mean", criterion=ADVERSARIAL_LOSSES[kind], no_activation_leastsq=True)


def temporal_const_loss(frames: torch.Tensor, depth: int) -> torch.Tensor:
    """The paper's ``const`` loss (Eq. 2) on generated frames of consecutive videos.

    ``frames`` is ``(N * depth, C, H, W)``, the frames of ``N`` videos in temporal order. Returns
    ``mean over videos of sum_t mean_pixels (G(x)_t - G(x)_{t-1})^2``: Eq. 2 divided by the number of values
    per frame (``C * H * W``), so that its weight does not depend on the frame size.
    """
    if frames.ndim != 4 or len(frames) % depth:
        raise ValueError(
            f"the const loss needs the frames of whole videos in order, (N * {depth}, C, H, W); got shape"
            f" {tuple(frames.shape)} (use it with sequential frames, method 'seq_const')."
        )
    videos = frames.reshape(len(frames) // depth, depth, -1)
    return (videos[:, 1:] - videos[:, :-1]).pow(2).mean(dim=2).sum(dim=1).mean()
