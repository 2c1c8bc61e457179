"""Learning-rate schedule of CycleGAN: constant, then linear decay to zero."""

from __future__ import annotations

__all__ = ["LinearDecay"]


class LinearDecay:
    """LR multiplier for ``torch.optim.lr_scheduler.LambdaLR``: 1 for ``total - decay`` steps, then linear to 0.

    A callable object rather than a lambda, so the scheduler's state (and this schedule) goes into checkpoints.

    Args:
        total: total number of scheduler steps (epochs or iterations).
        decay: number of final steps over which the rate decays linearly to 0 (CycleGAN: half of them).
    """

    def __init__(self, total: int, decay: int):
        if total < 1 or not 0 <= decay <= total:
            raise ValueError(f"need total >= 1 and 0 <= decay <= total, got total={total}, decay={decay}.")
        self.total = total
        self.decay = decay

    def __call__(self, step: int) -> float:
        start = self.total - self.decay
        if step < start:
            return 1.0
        return max(0.0, 1.0 - (step - start + 1) / (self.decay + 1))
