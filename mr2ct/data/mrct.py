"""Where the MR<->CT bundle's data come from: the user's folders or datalist, else the head phantom.

Bundle configs call these functions so that the phantom is built only when no real data are configured.
Domain A is MR, domain B is CT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mr2ct.data.head_phantom import HeadPhantomConfig, build_head_phantom
from mr2ct.io.readers import list_volumes, load_datalist, unpaired_items, volume_stem

__all__ = [
    "MODALITIES",
    "mrct_inference_folder",
    "mrct_paired_training_items",
    "mrct_pairs",
    "mrct_training_items",
    "phantom_config",
    "validation_phantom",
]

MODALITIES = ("mr", "ct")


def phantom_config(
    volume_size: Sequence[int], fov_mm: Sequence[float], num_train: int, num_test: int, seed: int
) -> HeadPhantomConfig:
    """The phantom that matches a bundle's ``volume_size`` (slices, x, y): shape (x, y, slices) in RAS order."""
    d, h, w = (int(v) for v in volume_size)
    return HeadPhantomConfig(
        shape=(h, w, d),
        fov_mm=(float(fov_mm[0]), float(fov_mm[1]), float(fov_mm[2])),
        num_train=num_train,
        num_test=num_test,
        seed=seed,
    )


def validation_phantom(phantom: HeadPhantomConfig, num_cases: int) -> HeadPhantomConfig:
    """Phantom subjects for validation during training and for choosing settings: ``num_cases`` paired subjects
    drawn with seed ``phantom.seed + 1``, so disjoint from the training and the test subjects of ``phantom``
    (which the evaluation reports); its one unpaired training subject per domain is not used."""
    return HeadPhantomConfig(
        shape=phantom.shape, fov_mm=phantom.fov_mm, num_train=1, num_test=num_cases, seed=phantom.seed + 1
    )


def mrct_training_items(
    phantom_dir: str | Path,
    phantom: HeadPhantomConfig,
    mr: str | None = None,
    ct: str | None = None,
    datalist: str | None = None,
) -> tuple[list[str], list[str]]:
    """Unpaired training volumes ``([mr paths], [ct paths])`` (the two domains of ``UnpairedDataset``).

    From a datalist JSON (e.g. the ``datalist.json`` that ``prepare_mrct`` writes), or two folders ``mr`` and
    ``ct``; with none of them, the phantom's training subjects (built on first use under ``phantom_dir``).
    """
    if datalist is not None:
        if mr is not None or ct is not None:
            raise ValueError("give either a datalist or MR/CT folders, not both.")
        mr_items, ct_items = unpaired_items(datalist)
    else:
        if (mr is None) != (ct is None):
            raise ValueError(f"training needs both an MR folder and a CT folder, got mr_dir={mr!r}, ct_dir={ct!r}.")
        if mr is None:
            folder = build_head_phantom(phantom_dir, phantom)
            mr, ct = str(folder / "train" / "mr"), str(folder / "train" / "ct")
        mr_items, ct_items = unpaired_items(mr, ct)
    return [item["A"] for item in mr_items], [item["B"] for item in ct_items]


def _by_stem(folder: str | Path) -> dict[str, str]:
    return {volume_stem(p): str(p) for p in list_volumes(folder)}


def mrct_pairs(
    phantom_dir: str | Path,
    phantom: HeadPhantomConfig | None,
    mr: str | None = None,
    ct: str | None = None,
    mask: str | None = None,
    limit: int | None = None,
    tissue: str | None = None,
) -> list[dict]:
    """Registered MR/CT pairs for evaluation: ``[{"image": mr, "label": ct, "mask": mask, "tissue": classes}]``.

    ``mr``, ``ct`` (and optionally ``mask``, the body mask of the CT, and ``tissue``, a tissue class map: 0 air,
    1 soft tissue, 2 bone) are folders whose files pair by name; with no folders, the phantom's paired test
    subjects (with their masks and tissue maps). Without a mask folder, items have no ``"mask"`` and the
    evaluation derives one from the CT; without a tissue folder, tissues are told apart by thresholds on the CT
    (:func:`mr2ct.metrics.tissue_classes`). Unmatched names are an error that lists them.
    """
    if mr is None and ct is None:
        folder = build_head_phantom(phantom_dir, phantom)
        mr, ct, mask, tissue = (str(folder / "test" / m) for m in ("mr", "ct", "mask", "tissue"))
    if mr is None or ct is None:
        raise ValueError("evaluation pairs need both an MR folder and a CT folder.")
    folders = {"image": _by_stem(mr), "label": _by_stem(ct)}
    for key, optional in (("mask", mask), ("tissue", tissue)):
        if optional is not None:
            folders[key] = _by_stem(optional)
    names = sorted(folders["image"])
    for files in folders.values():
        if sorted(files) != names:
            missing = sorted(set(names).symmetric_difference(files))
            kinds = ["MR", "CT", *(k for k in ("mask", "tissue") if k in folders)]
            raise ValueError(
                f"{', '.join(kinds[:-1])} and {kinds[-1]} folders must hold the same case names; "
                f"unmatched: {missing[:10]}"
            )
    names = names if limit is None else names[:limit]
    return [{key: files[name] for key, files in folders.items()} for name in names]


def mrct_paired_training_items(
    mr: str | None = None, ct: str | None = None, datalist: str | None = None
) -> list[dict[str, str]]:
    """Registered MR/CT training pairs for semi-supervised training: ``[{"A": mr, "B": ct}]``, empty if none given.

    From two folders ``mr`` and ``ct`` whose files pair by name (as for evaluation), or from a datalist JSON whose
    ``"training"`` entries each name both volumes (``{"training": [{"mr": "a_mr.nii.gz", "ct": "a_ct.nii.gz"}]}``,
    paths relative to the JSON). Each MR must be registered to its CT; both are resized to the network's volume
    like the unpaired data, so a pair keeps its alignment when the two share one grid.

    Raises:
        ValueError: both a datalist and folders, only one folder, unmatched names, or a datalist entry without
            both an MR and a CT.
    """
    if datalist is not None:
        if mr is not None or ct is not None:
            raise ValueError("give the training pairs either as a datalist or as MR/CT folders, not both.")
        data = load_datalist(datalist)  # resolves and checks the paths (a missing file, bad JSON or layout)
        entries = json.loads(Path(datalist).read_text(encoding="utf-8")).get("training")
        if not entries:
            raise ValueError(f"{datalist}: expected a 'training' list of {{'mr': ..., 'ct': ...}} pairs.")
        incomplete = [i for i, entry in enumerate(entries) if not ("mr" in entry and "ct" in entry)]
        if incomplete:
            raise ValueError(
                f"{datalist}: paired training entries need both 'mr' and 'ct'; entries {incomplete[:10]} lack one."
            )
        return [{"A": str(a), "B": str(b)} for a, b in zip(data["mr"], data["ct"])]
    if mr is None and ct is None:
        return []
    if mr is None or ct is None:
        raise ValueError(
            f"training pairs need both an MR and a CT folder, got paired_mr_dir={mr!r}, paired_ct_dir={ct!r}."
        )
    pairs = mrct_pairs("", None, mr=mr, ct=ct)  # folders given: no phantom
    return [{"A": item["image"], "B": item["label"]} for item in pairs]


def mrct_inference_folder(
    input_dir: str | None, modality: str, phantom_dir: str | Path, phantom: HeadPhantomConfig
) -> str:
    """``input_dir``, or (when None) the phantom's held-out ``modality`` folder so inference runs out of the box.

    Raises a clear error if the folder is missing or holds no volume.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
    folder = input_dir if input_dir is not None else build_head_phantom(phantom_dir, phantom) / "test" / modality
    list_volumes(folder)  # a missing or empty folder fails here, before any weights are loaded
    return str(folder)
