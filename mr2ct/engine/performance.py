"""Performance switches of training, each a bundle config key (all off by default: the fp32 reference):

=====================  ==================================================================================
``amp``                autocast the forward passes; ``amp_dtype`` ``"bfloat16"`` (CPU and CUDA, no grad
                       scaling; warns on a CPU without native bf16) or ``"float16"`` (CUDA only, with a
                       ``GradScaler``)
``channels_last``      networks and input batches in ``torch.channels_last_3d`` (5D) / ``torch.channels_last``
                       (4D) memory format
``compile``            ``torch.compile`` of the four networks, in place (``nn.Module.compile``): the modules,
                       their ``state_dict`` keys, checkpoints and ``model.pt`` stay as without it
``checkpoint_blocks``  activation checkpointing of the generators' residual blocks (less memory, ~1 more
                       forward pass of the blocks), see :class:`~mr2ct.networks.ResnetGenerator`
``fused_adam``         Adam with ``fused=True`` on CUDA, ``foreach=True`` (multi-tensor) on CPU
``cudnn_benchmark``    ``torch.backends.cudnn.benchmark`` (autotuned convolutions for fixed shapes)
=====================  ==================================================================================

:class:`~mr2ct.engine.CycleGANTrainer` applies ``amp``, ``channels_last`` and ``compile``; the bundles' configs
apply the others with the helpers below. ``mr2ct bench`` (:mod:`mr2ct.benchmarks.training_step`) measures them
against the fp32 reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
import torch.nn as nn

__all__ = [
    "AMP_DTYPES",
    "PERFORMANCE_FLAGS",
    "adam",
    "adam_options",
    "amp_dtype",
    "compile_network",
    "configure_backends",
    "cpu_has_native_bf16",
    "memory_format",
    "set_checkpoint_blocks",
    "to_channels_last",
]

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# the on/off switches above, as config keys
PERFORMANCE_FLAGS = ("amp", "channels_last", "compile", "checkpoint_blocks", "fused_adam", "cudnn_benchmark")


def amp_dtype(name: str | torch.dtype, device: str | torch.device | None = None) -> torch.dtype:
    """The autocast dtype of config value ``name``; a clear error for an unknown one, or for fp16 when ``device``
    (None: not checked) is not a CUDA device."""
    if isinstance(name, torch.dtype):
        dtype = name
        if dtype not in AMP_DTYPES.values():
            raise ValueError(f"amp_dtype must be one of {', '.join(AMP_DTYPES)}, got {name!r}.")
    elif name in AMP_DTYPES:
        dtype = AMP_DTYPES[name]
    else:
        raise ValueError(f"config key 'amp_dtype' must be one of {', '.join(AMP_DTYPES)}, got {name!r}.")
    if dtype == torch.float16 and device is not None and torch.device(device).type != "cuda":
        raise ValueError(f"amp_dtype 'float16' (with grad scaling) needs a CUDA device, got {device}; use 'bfloat16'.")
    if dtype == torch.bfloat16 and device is not None and torch.device(device).type == "cpu":
        if not cpu_has_native_bf16():
            warnings.warn(
                "amp with bfloat16 on a CPU without native bf16 instructions (AVX512-BF16 or AMX): the bf16 "
                "kernels are emulated and run many times slower than float32 here; leave amp off on this CPU.",
                stacklevel=2,
            )
    return dtype


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN's check for AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16 path either
        return False


def memory_format(ndim: int) -> torch.memory_format:
    """The channels-last memory format of a ``ndim``-D tensor (4: ``channels_last``, 5: ``channels_last_3d``);
    ``contiguous_format`` for other ranks."""
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim, torch.contiguous_format)


def to_channels_last(x):
    """A tensor (4D/5D; others unchanged) in channels-last memory format; or, for a module, its 4D/5D parameters
    and buffers converted in place (the parameter objects stay, so optimizers built before still hold them)."""
    if isinstance(x, torch.Tensor):
        return x.contiguous(memory_format=memory_format(x.ndim))
    with torch.no_grad():
        for t in list(x.parameters()) + list(x.buffers()):
            if t.ndim in (4, 5):
                t.data = t.data.contiguous(memory_format=memory_format(t.ndim))
    return x


def compile_network(net: nn.Module, enabled: bool = True, **options) -> nn.Module:
    """``torch.compile`` ``net`` in place (``nn.Module.compile``) and return it: unlike ``torch.compile(net)``
    no ``OptimizedModule`` wrapper is made, so ``state_dict`` keys (checkpoints, ``model.pt``) have no
    ``_orig_mod.`` prefix and the same weights load with or without compilation."""
    if enabled:
        net.compile(**options)
    return net


def set_checkpoint_blocks(net: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch activation checkpointing of the residual blocks of every ``ResnetGenerator`` inside ``net``."""
    from mr2ct.networks import ResnetGenerator

    for module in net.modules():
        if isinstance(module, ResnetGenerator):
            module.checkpoint_blocks = enabled
    return net


def adam_options(fused_adam: bool, device: str | torch.device) -> dict[str, bool | None]:
    """``{"fused": ..., "foreach": ...}`` for ``torch.optim.Adam``: fused on CUDA, multi-tensor (foreach) on CPU
    when ``fused_adam`` is on; both None (PyTorch's default) when off."""
    if not fused_adam:
        return {"fused": None, "foreach": None}
    cuda = torch.device(device).type == "cuda"
    return {"fused": True if cuda else None, "foreach": None if cuda else True}


def adam(params: Iterable, fused_adam: bool = False, device: str | torch.device = "cpu", **kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam(params, **kwargs)`` with :func:`adam_options`."""
    return torch.optim.Adam(params, **kwargs, **adam_options(fused_adam, device))  # type: ignore[arg-type]  # None: default


def configure_backends(cudnn_benchmark: bool = False) -> None:
    """Set ``torch.backends.cudnn.benchmark`` (bundles call this in ``initialize``)."""
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
