"""History buffer of generated images (Shrivastava et al., 2017), as used by CycleGAN's discriminator update."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["ImagePool"]


class ImagePool:
    """Buffer of previously generated images.

    The discriminator sees, for each image of the batch, either the new fake (while the pool fills, and
    with probability 0.5 afterwards) or a randomly chosen older fake, which is then replaced by the new one.
    This stabilises adversarial training (CycleGAN uses a pool of 50). The pool's contents are part of the
    training state (``state_dict``), so that a resumed run draws the same old fakes as an uninterrupted one.

    Args:
        pool_size: number of stored images; 0 disables the pool (the batch is returned unchanged).
    """

    def __init__(self, pool_size: int = 50):
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}.")
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape as ``images`` mixing new and stored fakes (no gradient)."""
        if self.pool_size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())  # a copy: a view would keep the whole batch in memory
                out.append(image)
            elif torch.rand(()) < 0.5:
                idx = int(torch.randint(len(self.images), ()))
                out.append(self.images[idx].to(image.device))  # stored images may come from a CPU checkpoint
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        """The stored images, for checkpoints."""
        return {"images": list(self.images)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the stored images of :meth:`state_dict`."""
        self.images = list(state_dict["images"])
