"""Split a multi-channel prediction into named items (e.g. a translation and its confidence map)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.transforms import MapTransform

__all__ = ["SplitChannelsd"]


class SplitChannelsd(MapTransform):
    """Split ``data[key]`` (channel first) into equal channel groups stored under ``names``, in order.

    For example ``SplitChannelsd("pred", ["pred", "uncertainty"])`` turns the two channels of
    :class:`~mr2ct.engine.AugmentationSpread`'s output into the translation and its spread. Meta data (affine,
    applied transforms) are kept on every part, so each can be inverted like the original.

    Args:
        key: the item to split.
        names: the items to write; ``key`` may be one of them (it is then replaced by its part).
    """

    def __init__(self, key: str, names: Sequence[str]):
        super().__init__(keys=[key])
        if len(names) < 2 or len(set(names)) < len(names):
            raise ValueError(f"names must be at least two distinct item names, got {list(names)}.")
        self.key = key
        self.names = list(names)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        value = d[self.key]
        channels = value.shape[0]  # type: ignore[attr-defined]
        if channels % len(self.names):
            raise ValueError(
                f"{self.key!r} has {channels} channels, which do not split into {len(self.names)} "
                f"equal parts {self.names}."
            )
        size = channels // len(self.names)
        for i, name in enumerate(self.names):
            d[name] = value[i * size : (i + 1) * size]  # type: ignore[index]
        return d
