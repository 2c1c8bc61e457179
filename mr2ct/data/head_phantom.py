"""A procedural 3D head phantom rendered as a T1-weighted-like MR volume and as a CT volume in HU.

Each subject is a random anatomy defined in millimetres in a head frame (x left->right, y posterior->anterior,
z inferior->superior, origin near the volume centre: the eyes sit at about z = +8 mm, the teeth at z = -35 mm,
and the default 90 mm slab runs from the brow down to the lower jaw): head outline, scalp and fat, a
three-layer skull (outer table, diploe, inner table) with the anterior, middle and posterior fossae, brain
(folded grey/white matter, ventricles, deep grey matter, brainstem, cerebellum), eyes and orbits, nasal
cavity and paranasal sinuses, airway, cervical spine, palate, mandible and teeth. The anatomy is posed (small
rotation and translation) and sampled on any voxel grid of the configured field of view, so every grid renders
the same head. The label map then drives both modalities, with per-subject tissue values, partial-volume blur,
an MR bias field and noise.

``build_head_phantom`` writes unpaired training subjects (disjoint for MR and CT) and paired test subjects
(MR, CT and body mask of the same anatomy) as NIfTI files, laid out like a small SynthRAD-style data set.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from mr2ct.io.atomic import building_folder
from mr2ct.io.nifti import write_nifti

__all__ = ["HeadPhantomConfig", "TISSUES", "build_head_phantom", "render_head", "tissue_class_map"]

_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)), float)  # corners of a box, as fractions

TISSUES: dict[str, int] = {
    "background": 0,
    "soft_tissue": 1,
    "fat": 2,
    "csf": 3,
    "grey_matter": 4,
    "white_matter": 5,
    "cortical_bone": 6,
    "marrow": 7,
    "teeth": 8,
    "vitreous": 9,
    "lens": 10,
    "air": 11,
}  # "air": air inside the head (sinuses, airway)
BG, SOFT, FAT, CSF, GM, WM, BONE, MARROW, TEETH, VITREOUS, LENS, AIR = range(12)
_TISSUE_CLASS = np.ones(len(TISSUES), np.uint8)  # label -> class of mr2ct.metrics.TISSUE_CLASSES: 1 soft tissue
_TISSUE_CLASS[[BG, AIR]] = 0  # air
_TISSUE_CLASS[[BONE, MARROW, TEETH]] = 2  # bone

# nominal values: CT in HU, MR (T1-like) in arbitrary units; each subject draws its own around them
CT_HU = {
    "background": -1000.0,
    "soft_tissue": 40.0,
    "fat": -100.0,
    "csf": 5.0,
    "grey_matter": 40.0,
    "white_matter": 25.0,
    "cortical_bone": 1400.0,
    "marrow": 550.0,
    "teeth": 2400.0,
    "vitreous": 10.0,
    "lens": 100.0,
    "air": -1000.0,
}
MR_T1 = {
    "background": 0.0,
    "soft_tissue": 330.0,
    "fat": 900.0,
    "csf": 110.0,
    "grey_matter": 430.0,
    "white_matter": 620.0,
    "cortical_bone": 35.0,
    "marrow": 560.0,
    "teeth": 20.0,
    "vitreous": 90.0,
    "lens": 380.0,
    "air": 5.0,
}


@dataclass(frozen=True)
class HeadPhantomConfig:
    """Settings of the head phantom data set.

    Args:
        shape: voxels ``(nx, ny, nz)`` in RAS order; ``z`` runs from the lower jaw (first slice) to the brow.
        fov_mm: field of view in mm along ``(x, y, z)``; the spacing is ``fov_mm / shape``.
        num_train: training subjects per domain (MR and CT training subjects are disjoint).
        num_test: paired test subjects (MR, CT and mask of the same subject).
        seed: seed of every random choice; subject ``i`` uses ``np.random.default_rng([seed, i])``.
    """

    shape: tuple[int, int, int] = (256, 256, 30)
    fov_mm: tuple[float, float, float] = (230.4, 230.4, 90.0)
    num_train: int = 40
    num_test: int = 10
    seed: int = 0

    def __post_init__(self):
        integer = lambda v, low: float(v).is_integer() and v >= low  # noqa: E731 - a one-line formula reads best as a lambda
        rules = {
            "shape": (lambda v: len(v) == 3 and all(integer(s, 8) for s in v), "3 integers >= 8"),
            "fov_mm": (lambda v: len(v) == 3 and all(0 < float(f) < np.inf for f in v), "3 positive lengths"),
            "num_train": (lambda v: integer(v, 1), "a positive integer"),
            "num_test": (lambda v: integer(v, 1), "a positive integer"),
            "seed": (lambda v: integer(v, 0), "a non-negative integer"),
        }
        for name, (valid, expected) in rules.items():
            value = getattr(self, name)
            try:
                ok = valid(value)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"HeadPhantomConfig.{name} must be {expected}, got {value!r}.")
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        object.__setattr__(self, "fov_mm", tuple(float(v) for v in self.fov_mm))
        for name in ("num_train", "num_test", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm, ``fov_mm / shape``."""
        x, y, z = (f / s for f, s in zip(self.fov_mm, self.shape))
        return x, y, z

    @property
    def affine(self) -> np.ndarray:
        """4x4 RAS affine: diagonal spacing, the centre of the volume at (0, 0, 0) mm."""
        spacing = np.array(self.spacing)
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = -(np.array(self.shape) - 1) / 2 * spacing
        return affine

    def as_dict(self) -> dict:
        """The settings as JSON-ready values."""
        return {
            "shape": list(self.shape),
            "fov_mm": list(self.fov_mm),
            "num_train": self.num_train,
            "num_test": self.num_test,
            "seed": self.seed,
        }

    def folder_name(self) -> str:
        """Name of the cache folder, e.g. ``headphantom_256x256x30_n40-10_seed0`` (plus ``_fov...`` if not default)."""
        name = f"headphantom_{'x'.join(map(str, self.shape))}_n{self.num_train}-{self.num_test}_seed{self.seed}"
        if self.fov_mm != HeadPhantomConfig.__dataclass_fields__["fov_mm"].default:
            name += "_fov" + "x".join(f"{f:g}" for f in self.fov_mm)
        return name


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix ``Rz @ Ry @ Rx`` for angles (radians) about x, y and z."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


class _Canvas:
    """A subject's voxel grid: head-frame coordinates (mm) of every voxel, and the label map being painted.

    Args:
        config: grid (shape, field of view).
        linear: 3x3 head-to-world matrix (rotation times per-axis scale).
        shift: world position (mm) of the head-frame origin.
    """

    def __init__(self, config: HeadPhantomConfig, linear: np.ndarray, shift: np.ndarray):
        self.shape, self.spacing = np.array(config.shape), np.array(config.spacing)
        self.origin = config.affine[:3, 3]
        self.linear, self.shift = linear, shift
        self.world_axes = [self.origin[i] + np.arange(n) * self.spacing[i] for i, n in enumerate(config.shape)]
        rel = [w - s for w, s in zip(self.world_axes, shift)]
        inv = np.linalg.inv(linear)  # head frame q = inv @ (world - shift)
        self.q = [
            (
                (inv[i, 0] * rel[0])[:, None, None]
                + (inv[i, 1] * rel[1])[None, :, None]
                + (inv[i, 2] * rel[2])[None, None, :]
            ).astype(np.float32)
            for i in range(3)
        ]
        self.labels = np.zeros(config.shape, np.uint8)

    def box(self, lo, hi) -> tuple[slice, ...] | None:
        """Voxel slices covering the head-frame box ``[lo, hi]`` (mm); None when it misses the grid."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        idx = ((lo + (hi - lo) * _CORNERS) @ self.linear.T + self.shift - self.origin) / self.spacing
        start = np.clip(np.floor(idx.min(0)).astype(int), 0, self.shape)
        stop = np.clip(np.ceil(idx.max(0)).astype(int) + 1, 0, self.shape)
        return None if np.any(stop <= start) else tuple(slice(a, b) for a, b in zip(start, stop))

    def paint(self, label: int, lo, hi, inside: Callable, clip: bool = True) -> None:
        """Set ``label`` where ``inside(qx, qy, qz, slices)`` holds in the head-frame box ``[lo, hi]`` (mm).

        Args:
            label: tissue label.
            lo: lower corner of the box (head frame, mm).
            hi: upper corner.
            inside: the shape, from the head-frame coordinates of the voxels near the box and their slices.
            clip: also require the voxels to lie in the box (not needed when ``inside`` lies in it anyway).
        """
        sl = self.box(lo, hi)
        if sl is not None:
            q = [qi[sl] for qi in self.q]
            region = inside(*q, sl)
            if clip:
                region = region & np.logical_and.reduce([(qi >= a) & (qi <= b) for qi, a, b in zip(q, lo, hi)])
            self.labels[sl][region] = label

    def ellipsoid(self, label: int, centre, axes, where: Callable | None = None) -> None:
        """Paint a solid head-frame-aligned ellipsoid, optionally only where ``where(qx, qy, qz, slices)``."""
        c, a = np.asarray(centre, float), np.asarray(axes, float)

        def inside(*q):
            return sum(((qi - np.float32(ci)) * np.float32(1 / ai)) ** 2 for qi, ci, ai in zip(q, c, a)) < 1

        self.paint(label, c - a, c + a, inside if where is None else lambda *q: inside(*q[:3]) & where(*q), False)


def _ell(q, centre, axes) -> np.ndarray:
    """Signed distance (mm) to an ellipsoid's surface, measured along the ray from its centre."""
    d = [qi - np.float32(c) for qi, c in zip(q, centre)]
    r2 = sum((di * np.float32(1 / a)) ** 2 for di, a in zip(d, axes))
    rho = np.sqrt((sum(di * di for di in d) + 1e-6 * min(axes) ** 2) / (r2 + 1e-6))  # centre-to-surface
    return (np.sqrt(r2) - 1) * rho


def _arch_distance(qx, qy, points: np.ndarray) -> np.ndarray:
    """In-plane distance (mm) to the polyline through ``points`` ``(n, 2)`` (a dental or mandibular arch)."""
    (x0, y0), (dx, dy) = points[:-1].T.astype(np.float32), np.diff(points, axis=0).T.astype(np.float32)
    px, py = qx[..., None] - x0, qy[..., None] - y0
    s = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0, 1)
    return np.sqrt(((px - s * dx) ** 2 + (py - s * dy) ** 2).min(-1))


def _arch(half_width: float, depth: float, front: float, tail=None) -> np.ndarray:
    """Polyline of a half-ellipse arch (incisors at ``y = front``), optionally extended to ``tail (x, y)``."""
    t = np.linspace(-np.pi / 2, np.pi / 2, 13)
    pts = np.stack([half_width * np.sin(t), front - depth + depth * np.cos(t)], 1)
    if tail is not None:
        pts = np.concatenate([[[-tail[0], tail[1]]], pts, [[tail[0], tail[1]]]])
    return pts


def _smooth_noise(rng: np.random.Generator, canvas: _Canvas, n_waves: int, wavelength_mm) -> np.ndarray:
    """Unit-variance smooth random field: ``n_waves`` plane waves of random direction in the head frame.

    A plane wave in head coordinates is a plane wave in world coordinates, so the field is a product of
    per-axis complex exponentials, summed over waves by one matrix product (fast on any grid).
    """
    k = rng.normal(size=(n_waves, 3))
    k *= (2 * np.pi / rng.uniform(wavelength_mm[0], wavelength_mm[1], n_waves) / np.linalg.norm(k, axis=1))[:, None]
    k_world = k @ np.linalg.inv(canvas.linear)  # k . q = k_world . (p - shift)
    phase = rng.uniform(0, 2 * np.pi, n_waves) - k_world @ canvas.shift
    ex, ey, ez = (
        np.exp(1j * (k_world[:, i, None] * canvas.world_axes[i][None])).astype(np.complex64) for i in range(3)
    )
    ex *= np.exp(1j * phase).astype(np.complex64)[:, None]
    field = ((ex[:, :, None] * ey[:, None, :]).reshape(n_waves, -1).T @ ez).real
    return (field * np.sqrt(2 / n_waves)).reshape(canvas.labels.shape).astype(np.float32)


_FIELDS = {
    "shape": (12, (80, 200)),
    "folds": (32, (14, 28)),
    "folia": (16, (6, 9)),
    "texture": (16, (10, 40)),
    "bias": (6, (150, 400)),
}  # smooth random fields: number of waves, wavelengths (mm)
# air cavities lined by thin bone (centre, semi-axes in mm; index into the subject's size factors)
_CAVITIES = (
    ((0, 58, -3), (11, 26, 18), 0),
    ((-27, 46, -10), (13, 17, 10), 1),
    ((27, 46, -10), (13, 17, 10), 2),
    ((0, 14, -8), (13, 11, 9), 3),
    ((0, 24, -16), (11, 8, 7), 0),
)  # nose, maxillary, sphenoid, pharynx
_CT_TEXTURE = np.array([0, 4, 4, 2, 4, 4, 120, 80, 150, 2, 4, 0], np.float32)  # HU of in-tissue variation


def _sample_anatomy(rng: np.random.Generator) -> dict:
    """Per-subject pose, sizes (mm), tissue values and noise levels: a fixed number of draws."""
    u = rng.uniform
    p = {
        "linear": _rotation(np.deg2rad(u(-4, 4, 3))) @ np.diag(u(0.92, 1.06) * u(0.96, 1.04, 3)),
        "shift": np.array([u(-4, 4), u(-4, 4), u(-3, 3)]),
        "cranium": (np.array([0, -5, 33]) + u(-2, 2, 3), np.array([72, 95, 85]) * u(0.96, 1.04, 3)),
        "skin": u(1.0, 2.0),
        "scalp": u(4.0, 7.5),
        "tables": np.array([u(1.5, 2.5), u(2.0, 5.0), u(1.0, 2.0)]),
        "base": u(2.5, 4.5),
        "csf": u(1.5, 3.5),
        "cortex": u(2.2, 3.2),
        "ventricles": u(0.7, 1.4),
        "eye_r": u(11.0, 12.5),
        "eye_x": u(30.0, 34.0),
        "eye_y": u(58.0, 62.0),
        "sinus": u(0.85, 1.15, 5),
        "jaw": u(-3.0, 3.0),
        "bias": u(0.08, 0.15),
        "ct_noise": u(10.0, 20.0),
        "mr_noise": u(0.012, 0.025),
    }
    ct = np.array(list(CT_HU.values()), np.float32)
    ct[[SOFT, CSF, GM, WM, VITREOUS]] += u(-5, 5, 5)
    ct[[FAT, LENS]] += u(-20, 20, 2)
    ct[[BONE, MARROW, TEETH]] = u((1150, 400, 2000), (1700, 700, 2800))
    mr = np.array(list(MR_T1.values()), np.float32) * u(0.93, 1.07, len(MR_T1))
    p["ct"], p["mr"] = ct, mr * u(0.8, 1.2)  # global MR gain
    return p


def _paint_head(cv: _Canvas, p: dict, f: dict) -> tuple[np.ndarray, np.ndarray]:
    """Head outline, skin and fat, skull down to the fossae, brain; returns (head and skull) signed distances."""
    qx, qy, qz = cv.q
    lab = cv.labels
    sd_cranium = _ell(cv.q, *p["cranium"]) + 1.5 * f["shape"]
    sd_head = sd_cranium.copy()  # union with face, neck and nose
    for c, a in (
        ((0, 20, -30), (60, 68, 45)),
        ((0, -25, -50), (58, 58, 60)),
        ((0, 0, -28), (60, 50, 40)),
        ((0, 84, -8), (13, 19, 23)),
    ):  # face, neck, cheeks, nose
        sl = cv.box(np.subtract(c, a) - 8, np.add(c, a) + 8)
        if sl is not None:
            sd_head[sl] = np.minimum(sd_head[sl], _ell([q[sl] for q in cv.q], c, a) + 1.5 * f["shape"][sl])
    lab[sd_head < 0] = SOFT
    lab[(sd_head < -p["skin"]) & (sd_head > -p["scalp"])] = FAT

    # skull: outer table, diploe, inner table, down to the floor of the anterior (above the orbits), middle and
    # posterior fossae; the petrous ridges run postero-laterally, the sphenoid ridges antero-laterally
    step = lambda y, y0: 1 / (1 + np.exp(-(y - y0) / 4.0))  # noqa: E731 - a one-line formula reads best as a lambda
    floor = -28 + 23 * step(qy, -2 - 0.5 * np.abs(qx)) + 25 * step(qy, 10 + 0.35 * np.abs(qx)) + 1.5 * f["texture"]
    depth = -sd_cranium - p["scalp"]  # below the outer skull surface
    t = p["tables"]
    skull = qz > floor - p["base"]
    lab[(depth > 0) & skull] = BONE
    lab[(depth > t[0]) & (depth < t[0] + t[1]) & skull] = MARROW
    intracranial = (depth > t.sum()) & (qz > floor)
    lab[intracranial] = CSF

    # brain: the cortex follows the zero set of a folding field (sulci), white matter beneath
    brain_depth = np.minimum(depth - t.sum() - p["csf"], qz - floor - p["csf"])
    sulcus = np.abs(f["folds"]) * 3.2  # about the distance (mm) to a sulcus
    brain = intracranial & (brain_depth > 0)
    lab[brain] = WM
    lab[brain & (np.minimum(brain_depth, sulcus) < p["cortex"]) & (brain_depth < 18)] = GM
    lab[brain & (((sulcus < 0.6) & (brain_depth < 14)) | ((np.abs(qx) < 1.2) & ((qy > 12) | (qy < -28))))] = CSF
    for side in (-1, 1):  # thalami and basal ganglia
        cv.ellipsoid(GM, (side * 13, 2, 26), (9, 16, 9), lambda x, *_, side=side: side * x > 3)
    cerebellum = ((0, -58, -10), (50, 32, 20))
    in_brain = lambda *q: brain[q[3]]  # noqa: E731 - a one-line formula reads best as a lambda
    cv.ellipsoid(CSF, cerebellum[0], np.add(cerebellum[1], 2), in_brain)  # tentorium
    cv.ellipsoid(GM, *cerebellum, in_brain)
    cv.ellipsoid(WM, cerebellum[0], np.multiply(cerebellum[1], 0.75), lambda *q: brain[q[3]] & (f["folia"][q[3]] > 0.4))
    for c, a in (
        ((-9, 2, 46), (5, 22, 10)),
        ((9, 2, 46), (5, 22, 10)),
        ((0, 0, 26), (2, 10, 8)),
        ((-30, -2, 6), (3, 12, 4)),
        ((30, -2, 6), (3, 12, 4)),
        ((0, -32, -12), (5, 4, 5)),
    ):
        cv.ellipsoid(CSF, c, np.multiply(a, p["ventricles"]))  # lateral (with temporal horns), third, fourth
    cv.paint(WM, (-11, -33, -28), (11, -11, 14), lambda x, y, *_: np.hypot(x, (y + 22) * 1.1) < 11)  # brainstem
    return sd_head, depth


def _paint_face(cv: _Canvas, p: dict, sd_head: np.ndarray, depth: np.ndarray) -> None:
    """Skull base and spine, sinuses and airway, orbits and eyes, maxilla, mandible and teeth."""
    inner = lambda margin: lambda *q: sd_head[q[3]] < -margin  # noqa: E731  (inside the head, off the skin)
    ring = lambda cy, r: lambda x, y, *_: np.hypot(x, y - cy) < r  # noqa: E731 - a one-line formula reads best as a lambda
    for side in (-1, 1):
        cv.ellipsoid(BONE, (side * 30, -12, -12), (9, 20, 7))  # petrous bone
    cv.paint(CSF, (-9, -33, -60), (9, -15, -20), ring(-24, 9))  # spinal canal
    cv.paint(WM, (-6, -30, -60), (6, -18, -20), ring(-24, 5.5))  # cord
    cv.paint(BONE, (-13, -37, -42), (13, -24, -32), lambda x, y, *_: np.hypot(x, y + 24) > 9)  # atlas arch
    cv.ellipsoid(BONE, (0, -5, -45), (9, 8, 15))  # dens, body of the axis
    cv.ellipsoid(MARROW, (0, -5, -45), (6.5, 5.5, 13))
    cv.ellipsoid(BONE, (0, 80, 30), (15, 7, 11), lambda *q: depth[q[3]] > -1)  # frontal sinus
    cv.ellipsoid(AIR, (0, 80, 30), np.multiply((12, 4.5, 8), p["sinus"][4]))
    for c, a, i in _CAVITIES:
        cv.ellipsoid(BONE, c, np.multiply(a, p["sinus"][i]) + 1.8, inner(2))
    for c, a, i in _CAVITIES:
        cv.ellipsoid(AIR, c, np.multiply(a, p["sinus"][i]), inner(3.5))
    cv.paint(SOFT, (-1.2, 32, -21), (1.2, 80, 15), inner(2))  # nasal septum
    for z0, side in itertools.product((-13, -4, 5), (-1, 1)):
        cv.ellipsoid(SOFT, (side * 8.5, 55, z0), (3.5, 17, 2.8))  # turbinates
    cv.paint(AIR, (-9, 8, -60), (9, 20, -16), lambda x, y, *_: np.hypot(x / 9, (y - 14) / 6) < 1)  # airway
    ex, ey, er = p["eye_x"], p["eye_y"], p["eye_r"]
    for side in (-1, 1):
        orbit = ((side * 28, ey - 14, 8), (15, 22, 13))
        cv.ellipsoid(BONE, orbit[0], np.add(orbit[1], 2), lambda x, y, *_: y < ey)  # orbit walls
        cv.ellipsoid(FAT, *orbit, inner(3))
        cv.ellipsoid(SOFT, (side * 23, ey - 24, 8), (2.5, 14, 2.5))  # optic nerve
        cv.ellipsoid(SOFT, (side * ex, ey, 8), (er,) * 3)  # sclera
        cv.ellipsoid(VITREOUS, (side * ex, ey, 8), (er - 1,) * 3)
        cv.ellipsoid(LENS, (side * ex, ey + er - 3, 8), (4.5, 2, 4.5))
        cv.ellipsoid(BONE, (side * 55, 20, -2), (6, 36, 3.5), inner(p["scalp"]))  # zygomatic arch

    front = 67 + p["jaw"]  # lower incisors (y, mm)
    upper, lower, mandible = _arch(30, 36, front + 3), _arch(28, 34, front), _arch(28, 34, front, tail=(46, -4))
    near = lambda arch, d: lambda x, y, *_: _arch_distance(x, y, arch) < d  # noqa: E731 - a one-line formula reads best as a lambda
    cv.paint(MARROW, (-37, 25, -30), (37, 80, -22), near(upper, 6.5))  # maxillary alveolar bone
    cv.paint(
        BONE,
        (-30, 25, -24),
        (30, front + 3, -21),
        lambda x, y, *_: y < front + 3 - 36 + 36 * np.sqrt(np.clip(1 - (x / 30) ** 2, 0, 1)),
    )  # hard palate
    cv.paint(BONE, (-54, -12, -60), (54, front + 8, -35), near(mandible, 7.0))
    cv.paint(MARROW, (-54, -12, -60), (54, front + 8, -37), near(mandible, 4.5))
    for side in (-1, 1):
        cv.ellipsoid(BONE, (side * 46, -4, -24), (4.5, 11, 22))  # ramus
        cv.ellipsoid(MARROW, (side * 46, -4, -24), (2.5, 8, 19))
    gaps = lambda x, y: np.cos(32 * np.arctan2(x, y - 30)) < 0.9  # noqa: E731  (between the teeth)
    cv.paint(TEETH, (-35, 25, -33), (35, front + 8, -25), lambda x, y, *_: near(upper, 4)(x, y) & gaps(x, y))
    cv.paint(TEETH, (-33, 25, -42), (33, front + 5, -34), lambda x, y, *_: near(lower, 4)(x, y) & gaps(x, y))
    cv.ellipsoid(AIR, (0, 38, -28), (17, 20, 1.8), lambda *q: cv.labels[q[3]] == SOFT)  # between tongue and palate


def render_head(rng: np.random.Generator, config: HeadPhantomConfig) -> dict[str, np.ndarray]:
    """Render one random subject as MR, CT, body mask and tissue labels on the grid of ``config``.

    Args:
        rng: random generator of this subject; the anatomy uses a fixed number of draws before any
            grid-dependent one, so the same generator state gives the same head on every grid.
        config: grid (``shape``, ``fov_mm``); the other fields are not used.

    Returns:
        ``{"mr": float32, "ct": float32 HU, "mask": uint8 body mask, "labels": uint8 (see TISSUES)}``,
        each of shape ``config.shape`` in RAS voxel order.
    """
    p = _sample_anatomy(rng)
    cv = _Canvas(config, p["linear"], p["shift"])
    f = {name: _smooth_noise(rng, cv, n, wavelengths) for name, (n, wavelengths) in _FIELDS.items()}
    sd_head, depth = _paint_head(cv, p, f)
    _paint_face(cv, p, sd_head, depth)
    lab = cv.labels
    lab[sd_head > -p["skin"]] = SOFT  # the skin covers whatever reaches it (an eye, a jaw)
    lab[sd_head >= 0] = BG

    # label lookup with in-tissue texture, partial-volume blur, MR bias field, CT Gaussian and MR Rician noise
    ct = p["ct"][lab] + _CT_TEXTURE[lab] * f["texture"]
    mr = p["mr"][lab] * (1 + np.float32(0.04) * f["texture"]) * np.exp(np.float32(p["bias"]) * f["bias"])
    ct, mr = (ndimage.gaussian_filter(v, 0.5, truncate=2.0) for v in (ct, mr))
    noise = rng.standard_normal((3, *ct.shape), dtype=np.float32)
    ct += np.float32(p["ct_noise"]) * noise[0]
    sigma = np.float32(p["mr_noise"] * p["mr"][WM])
    mr = np.hypot(mr + sigma * noise[1], sigma * noise[2])
    # body mask: the head, dilated by 2 mm and by the blur's reach (one voxel)
    mask = ndimage.maximum_filter((sd_head < 0).view(np.uint8), size=3) | (sd_head < 2.0)
    return {
        "mr": mr.astype(np.float32),
        "ct": np.clip(ct, -1024, 3071).astype(np.float32),
        "mask": mask.astype(np.uint8),
        "labels": lab,
    }


def tissue_class_map(labels: np.ndarray) -> np.ndarray:
    """The tissue classes of a phantom label map (see :data:`TISSUES`): 0 air (background and the air inside the
    head), 2 bone (cortical bone, marrow, teeth), 1 soft tissue (everything else), as ``uint8``."""
    return _TISSUE_CLASS[np.asarray(labels)]


def build_head_phantom(root_dir: str | Path, config: HeadPhantomConfig | None = None) -> Path:
    """Build (once) and cache the head phantom data set under ``root_dir/<config.folder_name()>``.

    Args:
        root_dir: parent folder of the data set folder.
        config: phantom settings (default: ``HeadPhantomConfig()``).

    Returns:
        The folder, holding ``train/mr`` and ``train/ct`` (disjoint subjects), ``test/{mr,ct,mask,tissue}`` (pairs:
        the same file names) as ``subject_XXXX.nii.gz`` and ``meta.json``. MR is float32, CT int16 HU, masks
        uint8, tissue the uint8 class map of :func:`tissue_class_map` (0 air, 1 soft tissue, 2 bone). The folder
        is written under a temporary name and renamed when complete; a folder built before tissue maps existed
        gets its ``test/tissue`` added (the same subjects rendered again).
    """
    config = config or HeadPhantomConfig()
    folder = Path(root_dir) / config.folder_name()
    n, m = config.num_train, config.num_test
    subjects = {"train_mr": list(range(n)), "train_ct": list(range(n, 2 * n)), "test": list(range(2 * n, 2 * n + m))}
    if (folder / "meta.json").is_file():
        if not (folder / "test" / "tissue").is_dir():
            with building_folder(folder / "test" / "tissue", marker=f"subject_{subjects['test'][0]:04d}.nii.gz") as tmp:
                for i in tqdm(subjects["test"], desc=f"adding tissue maps to {folder.name}", unit="subject"):
                    labels = render_head(np.random.default_rng([config.seed, i]), config)["labels"]
                    write_nifti(tmp / f"subject_{i:04d}.nii.gz", tissue_class_map(labels), config.affine)
        return folder
    with building_folder(folder) as tmp:
        for sub in ("train/mr", "train/ct", "test/mr", "test/ct", "test/mask", "test/tissue"):
            (tmp / sub).mkdir(parents=True)
        jobs: list[tuple[int, tuple[str, ...]]] = [(i, ("train/mr",)) for i in subjects["train_mr"]]
        jobs += [(i, ("train/ct",)) for i in subjects["train_ct"]]
        jobs += [(i, ("test/mr", "test/ct", "test/mask", "test/tissue")) for i in subjects["test"]]
        for i, outputs in tqdm(jobs, desc=f"building {folder.name}", unit="subject"):
            head = render_head(np.random.default_rng([config.seed, i]), config)
            arrays = {
                "mr": head["mr"],
                "ct": np.rint(head["ct"]).astype(np.int16),
                "mask": head["mask"],
                "tissue": tissue_class_map(head["labels"]),
            }
            for out in outputs:
                write_nifti(tmp / out / f"subject_{i:04d}.nii.gz", arrays[out.split("/")[1]], config.affine)
        meta = {
            **config.as_dict(),
            "spacing_mm": list(config.spacing),
            "affine": config.affine.tolist(),
            "counts": {"train_mr": n, "train_ct": n, "test": m},
            "subjects": subjects,
            "tissues": TISSUES,
            "tissue_classes": {"air": 0, "soft": 1, "bone": 2},
            "ct_hu": CT_HU,
            "mr_t1": MR_T1,
            "description": "procedural 3D head phantom (brow to lower jaw): T1-like MR and CT (HU) rendered "
            "from the same random anatomy; unpaired training subjects, paired test subjects",
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder
