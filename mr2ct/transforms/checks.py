"""A MONAI transform that stops a chain at the first unusable volume, naming its file."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from mr2ct.io.readers import check_volume

__all__ = ["CheckVolumed"]


class CheckVolumed(MapTransform):
    """Check channel-first volumes ``(C, X, Y, Z)``: ``channels`` channels, 3 spatial axes, non-empty, finite.

    Put it after ``LoadImaged`` + ``EnsureChannelFirstd`` (and again after intensity transforms if need be), so a
    bad case fails with ``"<file>: <what is wrong>"`` (a :class:`mr2ct.io.readers.VolumeError`) instead of
    a shape error deep inside a network. The file is ``meta["filename_or_obj"]`` of a MetaTensor, else the key.

    Args:
        keys: keys of the volumes to check.
        channels: the number of channels each volume must have.
        allow_constant: accept volumes whose voxels are all equal.
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(
        self, keys: KeysCollection, channels: int = 1, allow_constant: bool = True, allow_missing_keys: bool = False
    ):
        super().__init__(keys, allow_missing_keys)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}.")
        self.channels, self.allow_constant = channels, allow_constant

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            source = value.meta.get("filename_or_obj") if isinstance(value, MetaTensor) else None
            check_volume(value, source or f"data[{key!r}]", allow_constant=self.allow_constant, channels=self.channels)
        return d
