"""Multi-GPU (or multi-process CPU) training with ``torchrun``: process group, DDP wrappers, rank-0-only writing.

The shared training config (``bundles/common/configs/train.json``) uses these helpers; a bundle's
``configs/multi_gpu_train.json`` (MONAI's convention) only sets ``distributed``, which joins the process group::

    torchrun --nproc_per_node=N -m monai.bundle run training \\
        --config_file "['bundles/B/configs/train.json','bundles/B/configs/multi_gpu_train.json']"

Each process trains on ``cuda:LOCAL_RANK`` (CPU with the gloo backend when there is no GPU) on its shard of the
data (``DistributedSampler``); the trainer sees the four networks wrapped in ``DistributedDataParallel``, while
checkpoints, ``model.pt``, validation and the optimizers use the unwrapped modules (the same ``state_dict`` keys as
a single-process run). Handlers that write (checkpoints, final weights, loggers, progress bar, validation) run on
rank 0 only: each is marked where the shared config defines it. Outside a process group of more than one process
every helper is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import ignite.distributed as idist
import torch
import torch.nn as nn
from monai.data import DistributedSampler
from torch.nn.parallel import DistributedDataParallel

from mr2ct.engine.performance import to_channels_last

__all__ = [
    "cleanup",
    "distributed_sampler",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "local_device",
    "no_sync",
    "nonfinite_on_any_rank",
    "release_other_ranks",
    "unwrap",
    "wait_for_rank_zero",
    "wrap_ddp",
]


def is_distributed() -> bool:
    """Whether this process belongs to an initialised process group of more than one process."""
    return idist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank: the process group's, else ``torchrun``'s ``RANK`` variable, else 0."""
    return idist.get_rank() if idist.backend() else int(os.environ.get("RANK", 0))


def get_world_size() -> int:
    """The number of processes: the process group's, else ``torchrun``'s ``WORLD_SIZE`` variable, else 1."""
    return idist.get_world_size() if idist.backend() else int(os.environ.get("WORLD_SIZE", 1))


def local_device() -> torch.device:
    """``cuda:LOCAL_RANK`` (``torchrun`` sets ``LOCAL_RANK``) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def init_distributed(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` describes (``env://``): ``nccl`` with CUDA, else ``gloo``.

    Sets the current CUDA device to :func:`local_device`. Does nothing when the group exists already.
    Returns whether this process is in a group of more than one process.
    """
    if not idist.backend():
        device = local_device()
        if device.type == "cuda":
            torch.cuda.set_device(device)
        idist.initialize(backend or ("nccl" if device.type == "cuda" else "gloo"))
    return is_distributed()


def cleanup() -> None:
    """Leave the process group (a bundle's ``finalize``); no-op without one."""
    if idist.backend():
        idist.finalize()


def wait_for_rank_zero() -> None:
    """Ranks > 0 wait here until rank 0 calls :func:`release_other_ranks`; rank 0 goes on.

    Between the two calls rank 0 alone does first-time work that writes shared files (building a data set
    into ``dataset_dir``); the other ranks then find it done (cached) instead of writing the same files at once.
    """
    if is_distributed() and get_rank() > 0:
        idist.barrier()


def release_other_ranks() -> None:
    """Rank 0's half of :func:`wait_for_rank_zero`."""
    if is_distributed() and get_rank() == 0:
        idist.barrier()


def wrap_ddp(
    module: nn.Module,
    device: str | torch.device | None = None,
    find_unused_parameters: bool = False,
    channels_last: bool = False,
    **kwargs,
) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` (parameters broadcast from rank 0 now), or as is outside a group.

    Wrap only what the trainer sees: keep the unwrapped module for optimizers, checkpoints, ``model.pt`` and
    validation (the same ``state_dict`` keys as single-process training, and no collective calls from a
    rank-0-only validation). With ``channels_last`` the module's parameters are converted (in place) before
    wrapping, so that DDP's gradient buckets are laid out like the gradients.
    """
    if channels_last:
        to_channels_last(module)
    if not is_distributed():
        return module
    device = torch.device(device) if device is not None else next(module.parameters()).device
    device_ids = None
    if device.type == "cuda":
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=find_unused_parameters, **kwargs
    )


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper, else ``module``."""
    return module.module if isinstance(module, (DistributedDataParallel, nn.DataParallel)) else module


@contextmanager
def no_sync(*modules: nn.Module) -> Iterator[None]:
    """``no_sync()`` of each DDP module: backward passes inside only accumulate local gradients (the next
    backward outside all-reduces the sum). Use it around the forward and backward of all but the last of several
    backward passes per optimizer step; a no-op for modules that are not DDP."""
    with ExitStack() as stack:
        for module in modules:
            if isinstance(module, DistributedDataParallel):
                stack.enter_context(module.no_sync())
        yield


def nonfinite_on_any_rank(nonfinite: Sequence[str]) -> list[str]:
    """The names of this rank's non-finite losses; when distributed and only another rank had some,
    ``["loss on another rank"]``, so that every rank skips the same updates.

    A collective call when distributed: every rank must call it at the same point.
    """
    nonfinite = list(nonfinite)
    if not is_distributed():
        return nonfinite
    if idist.all_reduce(1.0 if nonfinite else 0.0, op="MAX") > 0 and not nonfinite:
        return ["loss on another rank"]
    return nonfinite


def distributed_sampler(
    dataset, shuffle: bool, seed: int = 0, even_divisible: bool = True
) -> DistributedSampler | None:
    """MONAI's ``DistributedSampler`` of ``dataset`` (this rank's shard) in a process group; None outside one, so
    that a ``DataLoader(..., sampler=..., shuffle=sampler is None)`` serves both."""
    if not is_distributed():
        return None
    return DistributedSampler(dataset, shuffle=shuffle, seed=seed, even_divisible=even_divisible)
