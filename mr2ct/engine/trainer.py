"""The one Ignite workflow that trains every method: 3D CycleGAN and the frame-wise 2D baselines."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, cast

import torch
import torch.nn as nn
from monai.engines import Trainer
from monai.utils import PostFix, ensure_tuple
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from mr2ct.engine.batching import ClipBatch, RandomFrames
from mr2ct.engine.checkpoint import EndlessLoader, ResumableLoader
from mr2ct.engine.distributed import no_sync, nonfinite_on_any_rank
from mr2ct.engine.image_pool import ImagePool
from mr2ct.engine.losses import (
    CHROMA_AFFINITIES,
    WARP_MASKS,
    MINDLoss,
    adversarial_loss,
    as_clips,
    chroma_smoothness_loss,
    clip_motion,
    temporal_const_loss,
    temporal_warp_loss,
)
from mr2ct.engine.performance import amp_dtype as _amp_dtype
from mr2ct.engine.performance import compile_network, to_channels_last
from mr2ct.networks.framewise import volume_to_frames
from mr2ct.networks.weights import count_parameters

__all__ = ["CycleGANTrainer", "cycle_weights", "loss_values"]

_NETWORKS = ("g_ab", "g_ba", "d_a", "d_b")


def loss_values(output: dict[str, Any]) -> dict[str, float]:
    """The named scalar losses of an iteration output (``loss_*`` keys), for Stats/TensorBoard/progress handlers."""
    return {k: float(v) for k, v in output.items() if k.startswith("loss_")}


def _set_requires_grad(networks: Sequence[nn.Module], flag: bool) -> None:
    for net in networks:
        for p in net.parameters():
            p.requires_grad_(flag)


def _batch_sources(batchdata: Mapping, keys: Sequence[str]) -> str:
    """The file names of a batch from its meta data (a MetaTensor's ``meta`` or a ``<key>_meta_dict``)."""
    found = []
    for key in keys:
        meta = getattr(batchdata.get(key), "meta", None) or batchdata.get(PostFix.meta(key)) or {}
        if "filename_or_obj" in meta:
            found.append(f"{key}: {', '.join(map(str, ensure_tuple(meta['filename_or_obj'])))}")
    return "; ".join(found) or "synthetic or in-memory data, no file names in the batch meta data"


def cycle_weights(lambda_cycle: float | Sequence[float]) -> tuple[float, float]:
    """``(lambda_a, lambda_b)``, the weights of the cycles from A and from B, given one number for both or a pair."""
    weights = tuple(ensure_tuple(lambda_cycle))
    if len(weights) == 1:
        weights *= 2
    if len(weights) != 2:
        raise ValueError(f"lambda_cycle must be one number or two (from A, from B), got {lambda_cycle!r}.")
    return float(weights[0]), float(weights[1])


class CycleGANTrainer(Trainer):
    """CycleGAN training (Zhu et al., 2017) for images, volumes and videos; inherits MONAI's ``Trainer``.

    Each iteration does one generator update and one discriminator update:

    1. ``fake_b = g_ab(a)``, ``fake_a = g_ba(b)``, ``rec_a = g_ba(fake_b)``, ``rec_b = g_ab(fake_a)``;
       generators minimise ``L_GAN(d_b(fake_b)) + L_GAN(d_a(fake_a))``
       ``+ lambda_a * |rec_a - a| + lambda_b * |rec_b - b|``, ``(lambda_a, lambda_b)`` from ``lambda_cycle``
       (+ ``lambda_identity * (lambda_a * |g_ba(a) - a| + lambda_b * |g_ab(b) - b|)``, + ``lambda_const * L_const`` on
       sequential frames, + ``lambda_warp * L_warp``, the flow-warped temporal loss of each translation along its
       input's motion, + ``lambda_structure * (S(a, fake_b) + S(b, fake_a))`` with a modality-independent
       structure loss ``S``, MIND by default, see :class:`~mr2ct.engine.MINDLoss`, + ``lambda_chroma *
       (C(a, fake_b) + C(b, fake_a))``, the colourisation prior :func:`~mr2ct.engine.losses.chroma_smoothness_loss`,
       + ``lambda_paired * (|g_ab(a_p) - b_p| + |g_ba(b_p) - a_p|)`` on a registered pair ``(a_p, b_p)`` drawn from
       ``paired_data_loader``); discriminators are frozen during this step.
    2. Each discriminator minimises ``(L(d(real), real) + L(d(fake), fake)) / 2`` with fakes drawn from an
       :class:`ImagePool`.

    Both optimizers step once all losses of the iteration are known to be finite. An iteration with a NaN or
    Inf loss changes no weight (nor the pools): it is skipped with a warning naming the losses and the batch's
    files; ``max_nonfinite_steps`` such iterations in a row stop training with a ``FloatingPointError``.

    Semi-supervised training: with ``paired_data_loader`` (a loader of ``{"A": clip, "B": clip}`` batches of
    registered pairs, e.g. a handful besides the unpaired folders) every iteration also draws one batch of pairs,
    pass after pass (:class:`~mr2ct.engine.EndlessLoader`), and adds the paired L1 terms for both generators;
    2D methods see all frames of the pair, in order (the same frames in both domains). Without it nothing
    changes.

    The trainer's ``state_dict`` holds, besides Ignite's epoch and iteration, the image pools, the position in
    the data streams (see :class:`~mr2ct.engine.ResumableLoader`) and the AMP grad scaler, so that with the
    networks, optimizers, schedulers and random states (:class:`~mr2ct.engine.TrainingCheckpointer`) a resumed
    run continues exactly.

    The paper's methods differ only in the networks (2D or 3D) and in ``prepare_batch`` (see
    :mod:`mr2ct.engine.batching`); ``lambda_const > 0`` adds its temporal total-variation term, which needs
    frames in temporal order (``SequentialFrames``) and ``clip_depth``.

    Args:
        device: device to train on.
        max_epochs: number of epochs.
        train_data_loader: loader of ``{"A": clip, "B": clip}`` batches.
        g_ab, g_ba: generators A->B and B->A.
        d_a, d_b: discriminators of domains A and B.
        g_optimizer: optimizer over both generators' parameters.
        d_optimizer: optimizer over both discriminators' parameters.
        adversarial_loss_fn: a MONAI ``PatchAdversarialLoss``; default least squares (LSGAN).
        lambda_cycle: weight of the cycle loss (gamma in the paper's Eq. 1): one number for both cycles, or
            ``(lambda_a, lambda_b)`` for the cycle from A (``a -> b -> a``) and the one from B, as CycleGAN's
            ``lambda_A`` and ``lambda_B``. A cycle that cannot be met (e.g. video -> segmentation -> video, which
            must recreate texture the segmentation does not hold) pushes its generator to hide the lost detail in
            its translation (Chu et al., 2017, "CycleGAN, a master of steganography"); a lower weight on that
            cycle eases the push.
        lambda_identity: weight of the identity loss, relative to each cycle's weight (0 disables it); the
            identity term of the generator into A (``g_ba(a) ~ a``) takes ``lambda_a``, as in CycleGAN.
        lambda_const: weight of the paper's ``const`` loss (Eq. 2); 0 disables it.
        clip_depth: frames per clip, needed to split sequential frames into videos for ``lambda_const`` and
            ``lambda_warp``.
        lambda_warp: weight of the flow-warped temporal loss (Lai et al., 2018; :func:`~mr2ct.engine.losses.
            temporal_warp_loss`): each translation's frame t + 1, warped back along the input's optical flow,
            should match its frame t where the input's motion is visible. For whole clips and sequential frames,
            not random ones; 0 disables it. Not in the paper.
        warp_mask: which pixels ``lambda_warp`` holds (:func:`~mr2ct.engine.losses.clip_motion`):
            ``"occlusion"``, the forward-backward check of the warping error, or ``"photometric"``, Lai et al.'s
            training mask (where the input itself is carried by its flow).
        warp_warmup: iterations over which ``lambda_warp`` ramps linearly from 0 to its value (iteration ``i``
            of training weighs the loss ``lambda_warp * min(1, i / warp_warmup)``); 0: full weight from the start.
            From the first iteration, an output that does not move (e.g. empty) meets the loss at once, before
            the networks have learnt a translation; the ramp lets the adversarial and cycle terms lead first.
        lambda_structure: weight of the structure loss between each input and its translation (0 disables it).
        structure_loss_fn: ``fn(source, translation) -> loss`` for ``lambda_structure``; default
            :class:`~mr2ct.engine.MINDLoss`.
        lambda_chroma: weight of the colourisation prior (:func:`~mr2ct.engine.losses.chroma_smoothness_loss`):
            where an input is flat, its translation keeps one colour (0 disables it; 0 for grey translations).
        chroma_affinity: what makes two input pixels "alike" for ``lambda_chroma``: ``"intensity"`` (grey level)
            or ``"colour"``.
        paired_data_loader: optional loader of registered pairs ``{"A": clip, "B": clip}``; None: unpaired only.
        lambda_paired: weight of the paired L1 terms (used with ``paired_data_loader``).
        pool_size: size of each fake-image pool (0 disables the pools).
        prepare_batch: turns a loaded batch into ``(real_a, real_b)`` network inputs.
        epoch_length: iterations per epoch (default: the loader's length).
        train_handlers: Ignite/MONAI handlers with an ``attach`` method.
        amp: run forward passes under ``torch.autocast`` in ``amp_dtype``.
        amp_dtype: ``"bfloat16"`` (CPU and CUDA, no grad scaling) or ``"float16"`` (CUDA only, with a
            ``GradScaler``, whose state is part of the trainer's ``state_dict``).
        channels_last: the networks (converted in place) and the input batches in channels-last memory format
            (``channels_last_3d`` for 5D, ``channels_last`` for 4D tensors).
        compile: ``torch.compile`` the four networks in place (``nn.Module.compile``): the same modules and
            ``state_dict`` keys, so checkpoints and ``model.pt`` do not depend on it.
        optim_set_to_none: ``zero_grad(set_to_none=...)``.
        non_blocking: non-blocking copies of batches to the device.
        max_nonfinite_steps: stop when this many consecutive iterations had a non-finite loss (0 or 1: at the first
            one); None: never stop, only skip them.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader,
        g_ab: nn.Module,
        g_ba: nn.Module,
        d_a: nn.Module,
        d_b: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        adversarial_loss_fn: Callable | None = None,
        lambda_cycle: float | Sequence[float] = 10.0,
        lambda_identity: float = 0.0,
        lambda_const: float = 0.0,
        clip_depth: int | None = None,
        lambda_warp: float = 0.0,
        warp_mask: str = "occlusion",
        warp_warmup: int = 0,
        lambda_structure: float = 0.0,
        structure_loss_fn: Callable | None = None,
        lambda_chroma: float = 0.0,
        chroma_affinity: str = "intensity",
        paired_data_loader: DataLoader | None = None,
        lambda_paired: float = 10.0,
        pool_size: int = 50,
        prepare_batch: Callable = ClipBatch(),
        epoch_length: int | None = None,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        amp_dtype: str = "bfloat16",
        channels_last: bool = False,
        compile: bool = False,
        optim_set_to_none: bool = True,
        non_blocking: bool = False,
        max_nonfinite_steps: int | None = 5,
    ):
        if max_epochs < 1:
            raise ValueError(f"max_epochs must be positive, got {max_epochs}.")
        if max_nonfinite_steps is not None and max_nonfinite_steps < 0:
            raise ValueError(f"max_nonfinite_steps must be None or >= 0, got {max_nonfinite_steps}.")
        self.cycle_weights = cycle_weights(lambda_cycle)
        weights = (lambda_identity, lambda_const, lambda_warp, lambda_structure, lambda_chroma, lambda_paired)
        if min(*self.cycle_weights, *weights) < 0:
            raise ValueError("loss weights must be >= 0.")
        if lambda_const > 0 and not clip_depth:
            raise ValueError("lambda_const > 0 needs clip_depth (frames per clip) to split frames into videos.")
        if lambda_warp > 0 and isinstance(prepare_batch, RandomFrames):
            raise ValueError("lambda_warp > 0 needs frames in temporal order: whole clips or sequential frames.")
        if warp_mask not in WARP_MASKS:
            raise ValueError(f"unknown warp_mask {warp_mask!r}; choose one of {', '.join(WARP_MASKS)}.")
        if chroma_affinity not in CHROMA_AFFINITIES:
            raise ValueError(
                f"unknown chroma_affinity {chroma_affinity!r}; choose one of {', '.join(CHROMA_AFFINITIES)}."
            )
        if warp_warmup < 0:
            raise ValueError(f"warp_warmup must be >= 0 iterations, got {warp_warmup}.")
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            handlers=train_handlers,
            amp=amp,
            decollate=False,
        )
        self.amp_dtype = _amp_dtype(amp_dtype, device if amp else None)
        # grad scaling for fp16 autocast only (which amp_dtype allows on CUDA only); bf16 and fp32 need none
        self.scaler: Any = torch.amp.GradScaler("cuda") if amp and self.amp_dtype == torch.float16 else None
        self.channels_last = channels_last
        for net in (g_ab, g_ba, d_a, d_b):
            if channels_last:
                to_channels_last(net)
            compile_network(net, compile)
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.adversarial_loss_fn = adversarial_loss_fn or adversarial_loss("lsgan")
        self.lambda_identity = lambda_identity
        self.lambda_const = lambda_const
        self.clip_depth = clip_depth
        self.lambda_warp = lambda_warp
        self.warp_mask = warp_mask
        self.warp_warmup = warp_warmup
        self.lambda_structure = lambda_structure
        self.structure_loss_fn = structure_loss_fn or MINDLoss()
        self.lambda_chroma = lambda_chroma
        self.chroma_affinity = chroma_affinity
        self.lambda_paired = lambda_paired
        self.paired_stream = EndlessLoader(paired_data_loader) if paired_data_loader is not None else None
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        self.optim_set_to_none = optim_set_to_none
        self.max_nonfinite_steps = max_nonfinite_steps
        self.state.nonfinite_steps = 0
        self.data_loader = ResumableLoader(train_data_loader)  # Workflow.run iterates over self.data_loader
        counts = {
            name: count_parameters(net) for name, net in (("g_ab", g_ab), ("g_ba", g_ba), ("d_a", d_a), ("d_b", d_b))
        }
        self.logger.info(f"trainable parameters: {counts} ({sum(counts.values()):,} in all)")

    def run(self) -> None:  # type: ignore[override]  # a Workflow runs its own data and epochs
        """Train (MONAI's ``Trainer.run`` without its replacing the grad scaler made in ``__init__``)."""
        super(Trainer, self).run()

    def train_step(self, batchdata: dict[str, Any]) -> dict[str, Any]:
        """One training iteration on ``batchdata`` outside ``run`` (what benchmarks time): the same generator and
        discriminator updates as an iteration of :meth:`run`; returns its output."""
        return self._iteration(self, batchdata)

    def _autocast(self):
        if not self.amp:
            return nullcontext()
        return torch.autocast(torch.device(self.state.device).type, dtype=self.amp_dtype)

    def _gradient_flags(self) -> torch.Tensor:
        """One bool per network (g_ab, g_ba, d_a, d_b): all its gradients are finite, on the device (no host sync).
        Checked under bf16 autocast, which has no grad scaler to catch them: finite losses can still give
        non-finite gradients (seen on CPU, torch 2.13, in the discriminators' 1-channel output convolution until it
        was kept in fp32)."""
        grads = [[p.grad for p in getattr(self, name).parameters() if p.grad is not None] for name in _NETWORKS]
        return torch.stack(
            [
                torch.stack([g.isfinite().all() for g in gs]).all()
                if gs
                else torch.ones((), dtype=torch.bool, device=self.state.device)
                for gs in grads
            ]
        )

    def _backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _step(self, *optimizers: Optimizer) -> None:
        if self.scaler is not None:
            for optimizer in optimizers:
                self.scaler.step(optimizer)
            self.scaler.update()  # once per iteration, after all optimizers
        else:
            for optimizer in optimizers:
                optimizer.step()

    def _half_cycle_losses(
        self,
        real: torch.Tensor,
        g_forward: nn.Module,
        g_back: nn.Module,
        d_target: nn.Module,
        lambda_cycle: float,
        pair: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The generator losses that start from one domain: ``real -> fake -> reconstruction``, whose cycle
        (and identity) terms are weighted by ``lambda_cycle``.

        Returns the translation and ``{"adversarial", "cycle", "identity", "const", "warp", "structure",
        "chroma", "paired"}`` (weighted; the last six only when their weights are > 0 and, for ``paired``, a ``pair``
        (source, target) of registered images is given). The identity term is ``g_back(real) ~ real``: the
        generator into ``real``'s domain leaves images of that domain unchanged.
        """
        fake = g_forward(real)
        losses = {
            "adversarial": self.adversarial_loss_fn(d_target(fake), target_is_real=True, for_discriminator=False),
            "cycle": lambda_cycle * torch.mean(torch.abs(g_back(fake) - real)),
        }
        if self.lambda_identity > 0:
            losses["identity"] = self.lambda_identity * lambda_cycle * torch.mean(torch.abs(g_back(real) - real))
        if self.lambda_const > 0:
            losses["const"] = self.lambda_const * temporal_const_loss(fake, cast(int, self.clip_depth))
        if self.lambda_warp > 0:
            motion = clip_motion(as_clips(real, self.clip_depth), self.warp_mask)
            losses["warp"] = self.warp_weight() * temporal_warp_loss(as_clips(fake, self.clip_depth), *motion)
        if self.lambda_structure > 0:
            losses["structure"] = self.lambda_structure * self.structure_loss_fn(real, fake)
        if self.lambda_chroma > 0:
            losses["chroma"] = self.lambda_chroma * chroma_smoothness_loss(real, fake, affinity=self.chroma_affinity)
        if pair is not None and self.lambda_paired > 0:
            source, target = pair
            losses["paired"] = self.lambda_paired * torch.mean(torch.abs(g_forward(source) - target))
        return fake, losses

    def warp_weight(self) -> float:
        """The weight of the flow-warped temporal loss at this iteration: ``lambda_warp``, ramped linearly over
        the first ``warp_warmup`` iterations (Ignite counts iterations from 1, so the first weighs
        ``lambda_warp / warp_warmup``)."""
        if self.warp_warmup == 0:
            return self.lambda_warp
        return self.lambda_warp * min(1.0, self.state.iteration / self.warp_warmup)

    def _next_pair(self, frames: bool) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The next batch of registered pairs ``(a, b)`` on the device (as frames for 2D networks), or None."""
        if self.paired_stream is None:
            return None
        keys = getattr(self.prepare_batch, "keys", ("A", "B"))
        a, b = ClipBatch(keys).clips(self.paired_stream.next(), self.state.device, self.non_blocking)
        if frames:
            a, b = volume_to_frames(a), volume_to_frames(b)
        if self.channels_last:
            a, b = to_channels_last(a), to_channels_last(b)
        return a, b

    def _generator_update(
        self, real_a: torch.Tensor, real_b: torch.Tensor, pair: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> dict[str, Any]:
        """The generators' gradients (the step waits until all losses are known to be finite); each half cycle
        (from A, from B) is backpropagated on its own and the gradients summed, so only one half's activations
        are held at a time (half the memory, the same gradients). ``pair``: registered ``(a, b)`` images."""
        self.g_optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        fakes, halves = {}, {}
        pairs = {"b": pair, "a": pair[::-1] if pair is not None else None}  # (source, target) of each half
        lambda_a, lambda_b = self.cycle_weights
        for name, real, g_forward, g_back, d_target, lambda_cycle in (
            ("b", real_a, self.g_ab, self.g_ba, self.d_b, lambda_a),
            ("a", real_b, self.g_ba, self.g_ab, self.d_a, lambda_b),
        ):
            # with DDP, the first half's gradients are only accumulated: the last backward all-reduces the sum
            with no_sync(self.g_ab, self.g_ba) if name == "b" else nullcontext():
                with self._autocast():
                    fake, losses = self._half_cycle_losses(real, g_forward, g_back, d_target, lambda_cycle, pairs[name])
                self._backward(cast(torch.Tensor, sum(losses.values())))
            fakes[name] = fake.detach()
            halves[name] = {k: v.detach() for k, v in losses.items()}
        out = {"loss_g_ab": halves["b"]["adversarial"], "loss_g_ba": halves["a"]["adversarial"]}
        for key in ("cycle", "identity", "const", "warp", "structure", "chroma", "paired"):
            if key in halves["b"]:
                out[f"loss_{key}"] = halves["b"][key] + halves["a"][key]
        return {"fake_a": fakes["a"], "fake_b": fakes["b"], **out}

    def _discriminator_loss(self, d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        adv = self.adversarial_loss_fn
        return 0.5 * (
            adv(d(real), target_is_real=True, for_discriminator=True)
            + adv(d(fake), target_is_real=False, for_discriminator=True)
        )

    def _discriminator_update(
        self, real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor, fake_b: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The discriminators' gradients, with fakes drawn from the image pools; returns their losses."""
        self.d_optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        with self._autocast():
            loss_d_a = self._discriminator_loss(self.d_a, real_a, self.pool_a.query(fake_a))
            loss_d_b = self._discriminator_loss(self.d_b, real_b, self.pool_b.query(fake_b))
        self._backward(loss_d_a + loss_d_b)
        return {"loss_d_a": loss_d_a.detach(), "loss_d_b": loss_d_b.detach()}

    def _skip_update(self, batchdata: Mapping, nonfinite: list[str]) -> None:
        """Count an iteration whose ``nonfinite`` losses forbid the update; stop after too many in a row."""
        self.state.nonfinite_steps += 1
        keys = getattr(self.prepare_batch, "keys", ("A", "B"))
        message = (
            f"iteration {self.state.iteration}: non-finite {', '.join(nonfinite)}; generators and"
            f" discriminators not updated (batch: {_batch_sources(batchdata, keys)})."
        )
        self.logger.warning(message)
        if self.max_nonfinite_steps is not None and self.state.nonfinite_steps >= self.max_nonfinite_steps:
            raise FloatingPointError(
                f"stopping: {self.state.nonfinite_steps} consecutive iterations had non-finite losses, the last"
                f" one: {message} The networks keep their weights from before these iterations. Check the data"
                " named above or lower the learning rate, then resume from the latest checkpoint."
            )

    def _rollback_point(self) -> Callable[[], None]:
        """What the discriminator update changes besides gradients (the image pools, the CPU random state that
        their draws use, the discriminators' buffers, if any), captured now; the returned function restores it.
        Cheap: the pools' lists are copied, not their images (which are replaced, never changed in place)."""
        pools = [list(self.pool_a.images), list(self.pool_b.images)]
        rng = torch.get_rng_state()
        buffers = [(b, b.clone()) for d in (self.d_a, self.d_b) for b in d.buffers()]

        def restore() -> None:
            self.pool_a.images, self.pool_b.images = pools
            torch.set_rng_state(rng)
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)

        return restore

    def _iteration(self, engine: CycleGANTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        """One generator and one discriminator update, or none if a loss is not finite; returns the named losses
        and the images.

        The host waits for the device once per iteration: all logged losses (and, under bf16 autocast, the
        gradients' finite flags) come over in one transfer after both backward passes. So the discriminators'
        forward and backward run even when a generator loss is not finite; their effect on the image pools, the
        random state and the discriminators' buffers is then undone, so that such an iteration changes nothing,
        as if the discriminator pass had not run (its losses are logged as NaN)."""
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        real_a, real_b = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        if engine.channels_last:
            real_a, real_b = to_channels_last(real_a), to_channels_last(real_b)
        discriminators = (engine.d_a, engine.d_b)
        pair = engine._next_pair(frames=real_a.ndim == 4)

        _set_requires_grad(discriminators, False)
        g_out = engine._generator_update(real_a, real_b, pair)
        _set_requires_grad(discriminators, True)
        g_losses = {k: v for k, v in g_out.items() if k.startswith("loss_")}
        fake_a, fake_b = g_out["fake_a"], g_out["fake_b"]
        rollback = engine._rollback_point()
        d_losses = engine._discriminator_update(real_a, real_b, fake_a, fake_b)
        check_gradients = engine.amp and engine.scaler is None
        # the one device-to-host transfer of the iteration (each value as float32: exact for fp32 and bf16 losses)
        values = [*g_losses.values(), sum(g_losses.values()), *d_losses.values()]
        flat = torch.stack([v.float() for v in values])
        if check_gradients:
            flat = torch.cat([flat, engine._gradient_flags().float()])
        host = flat.tolist()
        losses = dict(zip(g_losses, host))
        loss_g = host[len(g_losses)]
        d_values = dict(zip(d_losses, host[len(g_losses) + 1 :]))
        # distributed: all ranks skip together (their gradients were all-reduced with the non-finite ones)
        nonfinite = nonfinite_on_any_rank([k for k, v in losses.items() if not math.isfinite(v)])
        if nonfinite:  # as if no discriminator pass: non-finite fakes must not enter the image pools
            rollback()
            losses.update(loss_d_a=math.nan, loss_d_b=math.nan)
        else:
            losses.update(d_values)
            nonfinite = nonfinite_on_any_rank([k for k, v in d_values.items() if not math.isfinite(v)])
            if not nonfinite and check_gradients:
                finite = host[len(values) :]
                nonfinite = [f"{name} gradients" for name, ok in zip(_NETWORKS, finite) if not ok]
        if nonfinite:
            engine._skip_update(batchdata, nonfinite)
        else:
            engine.state.nonfinite_steps = 0
            engine._step(engine.g_optimizer, engine.d_optimizer)

        return {
            "real_a": real_a,
            "real_b": real_b,
            "fake_a": fake_a,
            "fake_b": fake_b,
            "loss_g": loss_g,
            **losses,
        }

    def state_dict(self) -> OrderedDict:
        """Ignite's engine state, the image pools, the positions in the data streams (unpaired and, if any, paired)
        and the AMP grad scaler."""
        state = super().state_dict()
        state.update(
            pool_a=self.pool_a.state_dict(),
            pool_b=self.pool_b.state_dict(),
            data=cast(ResumableLoader, self.data_loader).state_dict(),
            paired_data=self.paired_stream.state_dict() if self.paired_stream is not None else {},
            scaler=self.scaler.state_dict() if self.scaler is not None else {},
        )
        return state

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore the state of :meth:`state_dict` (a checkpoint is loaded when training starts)."""
        super().load_state_dict(state_dict)
        self.pool_a.load_state_dict(state_dict["pool_a"])
        self.pool_b.load_state_dict(state_dict["pool_b"])
        cast(ResumableLoader, self.data_loader).load_state_dict(state_dict["data"])
        if self.paired_stream is not None and state_dict.get("paired_data"):
            self.paired_stream.load_state_dict(state_dict["paired_data"])
        if self.scaler is not None and state_dict["scaler"]:
            self.scaler.load_state_dict(state_dict["scaler"])
