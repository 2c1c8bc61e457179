"""A procedural driving scene: RGB videos of a drive down a street and their per-pixel class labels.

A pinhole camera (height about 1.5 m, horizontal field of view about 60 degrees) drives forward in the right
lane of a straight street at a constant speed, swaying a little in its lane. The street has one or two lanes
per direction with dashed lane markings and edge lines (painted on the road, so labelled road), sidewalks
with kerbs and tiles, and on each side a row of buildings (floors of windows, shop fronts), trees, hedges and
open plots with grass, set back from the sidewalk; street lamps stand along the kerbs. Other vehicles (cars,
vans, trucks, buses) drive in every lane but the camera's own at their own speeds, oncoming traffic on the
left; a lead car may drive ahead in the camera's lane; pedestrians walk along the sidewalks. Everything is
anchored in world coordinates (textures included), so the scene streams past the camera with correct
perspective: markings and facades move toward and past the viewer faster when the camera is faster.

Every pixel is labelled with a VIPER class id (:data:`~mr2ct.data.viper.VIPER_CLASSES`: sky, road, sidewalk,
terrain, tree, vegetation, building, infrastructure, person, car, van, bus, truck), computed from the same
geometry as its colour. The RGB rendering adds shading (a sun side), fog with distance, clouds, a per-sequence
light level and tint, a small per-frame illumination flicker and sensor noise.

:func:`build_driving_scene` writes sequences in the VIPER layout (``train/img/<seq>/<seq>_<frame>.jpg``, JPEG
quality 95 like VIPER's own, and ``train/cls/<seq>/<seq>_<frame>.png``), so the GTA clip builder reads them
like the real data.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mr2ct.data.viper import GTA_SEQUENCES, class_id, class_table, write_viper_sequence
from mr2ct.io.atomic import building_folder

__all__ = ["DrivingSceneConfig", "build_driving_scene", "render_sequence"]

_VERSION = 1

SKY, ROAD, SIDEWALK, TERRAIN, TREE, VEGETATION, BUILDING, INFRASTRUCTURE, PERSON, CAR, VAN, BUS, TRUCK = (
    class_id(n)
    for n in (
        "sky",
        "road",
        "sidewalk",
        "terrain",
        "tree",
        "vegetation",
        "building",
        "infrastructure",
        "person",
        "car",
        "van",
        "bus",
        "truck",
    )
)
# vehicle kinds: class, probability, width, height, length (m)
_VEHICLES = (
    (CAR, 0.7, 1.8, 1.45, 4.3),
    (VAN, 0.12, 2.0, 2.1, 5.0),
    (TRUCK, 0.1, 2.5, 3.3, 8.0),
    (BUS, 0.08, 2.55, 3.1, 11.0),
)
# colours (linear RGB in [0, 1]) of materials
_GLASS, _WARM_LIGHT, _LEAVES, _TRUNK, _GRASS = (
    np.array(c, np.float32)
    for c in ([0.16, 0.2, 0.26], [0.8, 0.7, 0.4], [0.18, 0.36, 0.12], [0.3, 0.22, 0.15], [0.3, 0.45, 0.18])
)
_BLUE_SKY, _OVERCAST_SKY, _HAZE, _CLOUD = (
    np.array(c, np.float32) for c in ([0.25, 0.45, 0.8], [0.55, 0.58, 0.62], [0.78, 0.82, 0.88], [0.92, 0.93, 0.95])
)
_HEADLIGHT, _TAIL_LIGHT, _TYRE, _CAR_GLASS, _PLATE, _HAIR, _METAL, _SKIN = (
    np.array(c, np.float32)
    for c in (
        [0.95, 0.92, 0.75],
        [0.8, 0.05, 0.05],
        [0.04, 0.04, 0.05],
        [0.12, 0.15, 0.2],
        [0.9, 0.9, 0.85],
        [0.1, 0.07, 0.05],
        [0.32, 0.33, 0.35],
        [0.85, 0.65, 0.5],
    )
)
_NEAR, _WRAP = 1.0, (-25.0, 230.0)  # near clipping depth; objects' depths wrap around this range (m)
_FAR = 1500.0  # facades farther than this are not drawn (m)
_FACADE_COLOURS = np.array(
    [
        [0.78, 0.72, 0.62],
        [0.62, 0.36, 0.28],
        [0.58, 0.58, 0.6],
        [0.86, 0.84, 0.8],
        [0.5, 0.42, 0.35],
        [0.72, 0.62, 0.46],
        [0.45, 0.5, 0.55],
    ],
    np.float32,
)
_CAR_COLOURS = np.array(
    [
        [0.85, 0.85, 0.85],
        [0.08, 0.08, 0.1],
        [0.55, 0.56, 0.6],
        [0.6, 0.08, 0.08],
        [0.1, 0.2, 0.5],
        [0.15, 0.35, 0.2],
        [0.8, 0.7, 0.2],
        [0.35, 0.3, 0.28],
    ],
    np.float32,
)


@dataclass(frozen=True)
class DrivingSceneConfig:
    """Settings of the procedural driving scene.

    Args:
        size: ``(H, W)`` of a frame (render larger than the clips for anti-aliased downsampling).
        sequences: names of the sequences; default the paper's GTA selection, so the default clip settings
            find them. Sequence ``name`` uses ``np.random.default_rng([seed, crc32(name)])``.
        frames: frames per sequence.
        fps: frames per second (with the speed, sets how far the camera moves between frames).
        speed_range: the camera's speed in m/s, drawn uniformly per sequence (low: "slow" sequences).
        num_cars: other vehicles per sequence (a lead car in the camera's lane comes on top, at random).
        num_pedestrians: pedestrians per sequence (0: none).
        flicker: standard deviation of the per-frame global illumination gain (relative, e.g. 0.02 = 2%).
        noise: standard deviation of the per-pixel sensor noise, in grey levels.
        seed: seed of every random choice.
    """

    size: tuple[int, int] = (216, 384)
    sequences: tuple[str, ...] = GTA_SEQUENCES
    frames: int = 300
    fps: float = 15.0
    speed_range: tuple[float, float] = (1.0, 15.0)
    num_cars: int = 8
    num_pedestrians: int = 6
    flicker: float = 0.02
    noise: float = 2.0
    seed: int = 0

    def __post_init__(self):
        size, speeds = tuple(int(s) for s in self.size), tuple(float(s) for s in self.speed_range)
        sequences = tuple(str(s) for s in self.sequences)
        checks = {
            "size": len(size) == 2 and min(size) >= 8,
            "sequences": len(set(sequences)) == len(sequences) > 0,
            "frames": self.frames >= 1,
            "fps": self.fps > 0,
            "speed_range": len(speeds) == 2 and 0 <= speeds[0] <= speeds[1],
            "num_cars": self.num_cars >= 0,
            "num_pedestrians": self.num_pedestrians >= 0,
            "flicker": 0 <= self.flicker < 0.5,
            "noise": self.noise >= 0,
            "seed": self.seed >= 0,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"invalid DrivingSceneConfig: {', '.join(bad)} (size (H, W) >= 8, distinct sequence "
                f"names, frames >= 1, fps > 0, 0 <= speed_range[0] <= speed_range[1], counts >= 0, "
                f"flicker in [0, 0.5), noise >= 0)."
            )
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "speed_range", speeds)
        object.__setattr__(self, "sequences", sequences)

    def as_dict(self) -> dict:
        """The settings as JSON-ready values."""
        return {
            **asdict(self),
            "size": list(self.size),
            "sequences": list(self.sequences),
            "speed_range": list(self.speed_range),
        }

    def folder_name(self) -> str:
        """Cache folder name, e.g. ``driving_scene_v1_216x384_n15x300_seed0_<digest of all settings>``."""
        digest = zlib.crc32(json.dumps(self.as_dict(), sort_keys=True).encode("utf-8"))
        return (
            f"driving_scene_v{_VERSION}_{self.size[0]}x{self.size[1]}_n{len(self.sequences)}x{self.frames}_"
            f"seed{self.seed}_{digest:08x}"
        )

    def sequence_rng(self, name: str) -> np.random.Generator:
        """The random generator of sequence ``name``."""
        return np.random.default_rng([self.seed, zlib.crc32(name.encode("utf-8"))])


# ------------------------------------------------------------------------------------------------ noise


def _hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Pseudo-random values in [0, 1) of integer lattice points (a texture fixed in world coordinates)."""
    h = (np.asarray(i, np.int64) * 374761393 + np.asarray(j, np.int64) * 668265263 + salt * 982451653) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    return (h ^ (h >> 16)).astype(np.float32) * np.float32(2.0**-32)


def _value_noise(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Smooth noise in [0, 1): lattice values at integer ``(a, b)``, interpolated with a smoothstep."""
    ia, ib = np.floor(a), np.floor(b)
    fa, fb = a - ia, b - ib
    fa, fb = fa * fa * (3 - 2 * fa), fb * fb * (3 - 2 * fb)
    n0 = _hash(ia, ib, salt) * (1 - fa) + _hash(ia + 1, ib, salt) * fa
    n1 = _hash(ia, ib + 1, salt) * (1 - fa) + _hash(ia + 1, ib + 1, salt) * fa
    return n0 * (1 - fb) + n1 * fb


def _detail(depth: np.ndarray, f: float, scale: float) -> np.ndarray:
    """Weight of texture detail of size ``scale`` (m) at ``depth``: 1 when it spans pixels, 0 below one pixel."""
    return np.clip(1.5 - depth / (f * scale), 0.0, 1.0)


def _line(x: np.ndarray, centre: float, width: float, footprint: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a line of ``width`` at ``centre`` by pixels of ``footprint`` (same units as x)."""
    return np.clip((width / 2 - np.abs(x - centre)) / np.maximum(footprint, 1e-6) + 0.5, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ the street


@dataclass
class _Side:
    """One side of the street: the facade plane and the segments (building, trees, hedge, open) along it."""

    face: float  # |X| of the facade plane (m)
    starts: np.ndarray  # (n + 1,) segment boundaries along the street (m)
    kinds: np.ndarray  # (n,) 0 building, 1 trees, 2 hedge, 3 open plot
    heights: np.ndarray  # (n,) building / crown-top / hedge height (m)
    colours: np.ndarray  # (n, 3)
    salt: int


@dataclass
class _Street:
    """Everything about one sequence's world that does not change over time."""

    size: tuple[int, int]
    speed: float  # m/s
    fps: float
    f: float  # focal length (px)
    cx: float
    horizon: float  # row of the horizon
    cam_h: float
    lane_w: float
    lanes: int  # per direction
    sidewalk: float
    sides: dict[int, _Side]  # -1 left, +1 right
    lamp_spacing: float
    sun: int  # the side whose facades are sunlit
    light: np.ndarray  # (3,) level times tint
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    cloudiness: float
    fog: float  # m
    asphalt: float
    vehicles: list[dict] = field(default_factory=list)
    pedestrians: list[dict] = field(default_factory=list)
    salt: int = 0
    sky: np.ndarray | None = None  # the rendered sky, cached

    @property
    def half(self) -> float:
        """Half width of the road (m); the centre line is X = 0."""
        return self.lanes * self.lane_w

    @property
    def cam_x(self) -> float:
        """Lateral position of the camera: the centre of the rightmost lane."""
        return self.half - self.lane_w / 2


def _sample_side(rng: np.random.Generator, face: float, length: float) -> _Side:
    lengths = rng.uniform(8.0, 26.0, size=int(length / 8.0) + 2)
    starts = np.concatenate([[-60.0], -60.0 + np.cumsum(lengths)])
    n = len(lengths)
    kinds = rng.choice(4, size=n, p=[0.6, 0.22, 0.1, 0.08])
    heights = np.select(
        [kinds == 0, kinds == 1, kinds == 2],
        [rng.uniform(6, 30, n), rng.uniform(5, 10, n), rng.uniform(0.8, 2.0, n)],
        0.0,
    )
    colours = _FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS), size=n)] * rng.uniform(0.85, 1.1, (n, 1))
    return _Side(face, starts, kinds, heights, colours.astype(np.float32), int(rng.integers(1 << 30)))


def _sample_street(rng: np.random.Generator, config: DrivingSceneConfig, speed: float) -> _Street:
    h, w = config.size
    lanes, lane_w = int(rng.choice([1, 2])), float(rng.uniform(3.2, 3.7))
    sidewalk = float(rng.uniform(2.5, 4.5))
    length = speed * config.frames / config.fps + _FAR + 100
    sides = {s: _sample_side(rng, lanes * lane_w + sidewalk + rng.uniform(0.0, 4.0), length) for s in (-1, 1)}
    overcast = rng.uniform() < 0.3
    sky_top = _OVERCAST_SKY if overcast else _BLUE_SKY * rng.uniform(0.9, 1.1)
    street = _Street(
        size=(h, w),
        speed=speed,
        fps=config.fps,
        f=w * rng.uniform(0.82, 0.92),
        cx=(w - 1) / 2,
        horizon=h * rng.uniform(0.4, 0.47),
        cam_h=float(rng.uniform(1.3, 1.7)),
        lane_w=lane_w,
        lanes=lanes,
        sidewalk=sidewalk,
        sides=sides,
        lamp_spacing=float(rng.uniform(22, 40)),
        sun=int(rng.choice([-1, 1])),
        light=rng.uniform(0.8, 1.15) * (1 + rng.uniform(-0.06, 0.06, 3)) * (0.85 if overcast else 1.0),
        sky_top=sky_top,
        sky_horizon=_HAZE * rng.uniform(0.92, 1.05),
        cloudiness=float(rng.uniform(0.1, 0.6)) if not overcast else 0.2,
        fog=float(rng.uniform(150, 450)),
        asphalt=float(rng.uniform(0.26, 0.38)),
        salt=int(rng.integers(1 << 30)),
    )
    street.vehicles = _sample_vehicles(rng, street, config.num_cars)
    street.pedestrians = [_sample_pedestrian(rng, street) for _ in range(config.num_pedestrians)]
    return street


def _sample_vehicles(rng: np.random.Generator, street: _Street, count: int) -> list[dict]:
    """Vehicles in every lane but the camera's (X centre, world position and speed), plus maybe a lead car."""
    lanes = [street.half - street.lane_w * (k + 0.5) for k in range(2 * street.lanes)]
    others = [x for x in lanes if abs(x - street.cam_x) > 1e-6]
    vehicles = []
    for k in range(count + (rng.uniform() < 0.6)):
        cls, _, width, height, length = _VEHICLES[rng.choice(len(_VEHICLES), p=[v[1] for v in _VEHICLES])]
        lead = k == count
        x = street.cam_x if lead else float(rng.choice(others))
        if lead:
            speed = street.speed
        elif x < 0:  # oncoming
            speed = -rng.uniform(6.0, 14.0)
        else:
            speed = street.speed * rng.uniform(0.5, 1.4) + rng.uniform(-2.0, 2.0)
        vehicles.append(
            {
                "cls": cls,
                "x": x,
                "u0": float(rng.uniform(*_WRAP)) if not lead else 0.0,
                "speed": float(speed),
                "width": width,
                "height": height,
                "length": length,
                "lead": lead,
                "gap": float(rng.uniform(9, 25)),
                "phase": float(rng.uniform(0, 2 * np.pi)),
                "colour": _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * rng.uniform(0.85, 1.1),
            }
        )
    return vehicles


def _sample_pedestrian(rng: np.random.Generator, street: _Street) -> dict:
    side = int(rng.choice([-1, 1]))
    return {
        "x": side * (street.half + street.sidewalk * rng.uniform(0.3, 0.85)),
        "u0": float(rng.uniform(*_WRAP)),
        "speed": float(rng.choice([-1, 1]) * rng.uniform(0.8, 1.6)),
        "height": float(rng.uniform(1.55, 1.9)),
        "shirt": rng.uniform(0.1, 0.9, 3),
        "trousers": rng.uniform(0.05, 0.4, 3) * [1, 1, 1.3],
        "skin": _SKIN * rng.uniform(0.45, 1.05),
    }


# ------------------------------------------------------------------------------------------------ rendering


class _Frame:
    """The buffers of one frame: colour (linear, [0, 1]), class ids and depth (m; inf for the sky)."""

    def __init__(self, street: _Street, t: int):
        self.s = street
        h, w = street.size
        self.time = t / street.fps
        self.u_cam = street.speed * self.time
        self.cam_x = street.cam_x + 0.15 * np.sin(2 * np.pi * self.time / 7.0 + street.salt % 7)
        self.xs = (np.arange(w) - street.cx).astype(np.float32)  # pixel offsets from the principal point
        self.ys = (np.arange(h) - street.horizon).astype(np.float32)  # pixel offsets below the horizon
        self.rgb = np.zeros((h, w, 3), dtype=np.float32)
        self.labels = np.full((h, w), SKY, dtype=np.uint8)
        self.depth = np.full((h, w), np.inf, dtype=np.float32)
        self.traffic = self._vehicles()

    # -- background: sky, ground, facades

    def sky(self) -> None:
        """Sky gradient and clouds; at infinity, so the same in every frame (computed once per sequence)."""
        s, (h, w) = self.s, self.s.size
        if s.sky is None:
            rows = np.clip(-self.ys / max(s.horizon, 1.0), 0, 1)[:, None, None] ** 0.7
            colour = s.sky_horizon * (1 - rows) + s.sky_top * rows
            a, b = self.xs[None, :] / w * 5, self.ys[:, None] / h * 10
            clouds = 0.6 * _value_noise(a, b, s.salt) + 0.4 * _value_noise(a * 3, b * 3, s.salt + 1)
            cover = np.clip((clouds - (1 - s.cloudiness)) * 3, 0, 1)[..., None]
            s.sky = (colour * (1 - cover) + _CLOUD * cover).astype(np.float32)
        self.rgb[:] = s.sky

    def ground(self) -> None:
        """Road (asphalt, markings, vehicle shadows), sidewalks (kerbs, tiles) and grass, on the plane Y = 0."""
        s = self.s
        rows = np.flatnonzero(self.ys > 0.5)
        z = (s.f * s.cam_h / self.ys[rows])[:, None] * np.ones_like(self.xs)[None, :]
        x = self.cam_x + self.xs[None, :] * z / s.f
        u = self.u_cam + z
        ax, foot = np.abs(x), z / s.f
        road, walk = ax < s.half, (ax >= s.half) & (ax < s.half + s.sidewalk)
        labels = np.select([road, walk], [ROAD, SIDEWALK], TERRAIN).astype(np.uint8)
        fine = _detail(z, s.f, 0.25) * (_value_noise(x * 4, u * 4, s.salt + 2) - 0.5)
        coarse = _value_noise(x / 3, u / 3, s.salt + 3) - 0.5
        tone = np.select(
            [road, walk], [s.asphalt * (1 + 0.25 * fine + 0.15 * coarse), 0.62 * (1 + 0.1 * fine + 0.06 * coarse)], 0.0
        )
        colour = np.repeat(tone[..., None], 3, axis=-1)
        grass = _GRASS * (0.8 + 0.4 * _value_noise(x * 2, u * 2, s.salt + 4))[..., None]
        colour = np.where(labels[..., None] == TERRAIN, grass, colour)
        colour = self._markings(colour, x, u, foot, road, walk)
        colour = self._shadows(colour, x, z)
        self.rgb[rows] = colour
        self.labels[rows] = labels
        self.depth[rows] = z

    def _markings(self, colour, x, u, foot, road, walk) -> np.ndarray:
        """Paint on the road (labelled road): edge lines, the centre line, dashed lane dividers; kerbs and tiles."""
        s = self.s
        paint = np.zeros_like(x)
        for edge in (-1, 1):
            paint = np.maximum(paint, _line(x, edge * (s.half - 0.3), 0.15, foot))
        paint = np.maximum(paint, _line(x, 0.0, 0.15, foot))
        dashes = (np.mod(u, 9.0) < 3.0).astype(float)
        for k in range(1, s.lanes):
            for side in (-1, 1):
                paint = np.maximum(paint, dashes * _line(x, side * k * s.lane_w, 0.12, foot))
        colour = np.where(road[..., None], colour * (1 - paint[..., None]) + 0.88 * paint[..., None], colour)
        kerb = _line(np.abs(x), s.half + 0.12, 0.25, foot)
        seams = np.maximum(_line(np.mod(u, 1.5), 0.75, 0.05, foot), _line(np.mod(np.abs(x), 1.5), 0.75, 0.05, foot))
        seams *= _detail(foot * s.f, s.f, 0.1)
        shade = 1 + 0.25 * kerb - 0.25 * seams
        return np.where(walk[..., None], colour * shade[..., None], colour)

    def _shadows(self, colour, x, z) -> np.ndarray:
        """Darken the road under the vehicles."""
        for v in self.traffic:
            if v["z"] + v["length"] > _NEAR and v["z"] < 80:
                under = (
                    (np.abs(x - self.cam_x - v["xr"]) < v["width"] * 0.55)
                    & (z > v["z"] - 0.4)
                    & (z < v["z"] + v["length"])
                )
                colour[under] *= 0.45
        return colour

    def facades(self) -> None:
        """Both rows of buildings, trees, hedges and open plots, on planes parallel to the street."""
        s = self.s
        for sign, side in s.sides.items():
            cols = np.flatnonzero(sign * self.xs > 0.5)
            z = s.f * (sign * side.face - self.cam_x) / self.xs[cols]  # depth of each column's facade point
            cols, z = cols[z < _FAR], z[z < _FAR]
            u = self.u_cam + z
            seg = np.clip(np.searchsorted(side.starts, u, side="right") - 1, 0, len(side.kinds) - 1)
            local = u - side.starts[seg]
            lo, hi, trunk, cls = self._profile(side.kinds[seg], side.heights[seg], local, side.salt, seg)
            y = s.cam_h - self.ys[:, None] * z[None, :] / s.f  # world height of each pixel on the facade plane
            rows, k = np.nonzero(((y >= lo) & (y < hi)) | ((y >= 0) & (y < trunk)))
            at = (rows, cols[k])
            self.rgb[at] = self._facade_colour(side, seg[k], local[k], y[rows, k], z[k], lo[k], sign)
            self.labels[at] = cls[k]
            self.depth[at] = z[k]

    @staticmethod
    def _profile(kind, top, local, salt, seg):
        """Per column: the covered height range ``[lo, hi)`` (a tree's crown), a trunk height, and the class."""
        spacing = 6.0
        centre = (np.floor(local / spacing) + 0.5) * spacing
        radius = 1.8 + 1.2 * _hash(seg, np.floor(local / spacing), salt)
        d = np.abs(local - centre)
        chord = np.sqrt(np.clip(radius**2 - d**2, 0, None))
        crown_c = top - radius
        is_tree, is_open = kind == 1, kind == 3
        lo = np.where(is_tree, crown_c - chord, 0.0)
        hi = np.where(is_tree, np.where(chord > 0, crown_c + chord, 0.0), np.where(is_open, 0.0, top))
        trunk = np.where(is_tree & (d < 0.2), crown_c, 0.0)
        cls = np.select([kind == 0, is_tree, kind == 2], [BUILDING, TREE, VEGETATION], TERRAIN).astype(np.uint8)
        return lo, hi, trunk, cls

    def _facade_colour(self, side, seg, local, y, z, crown_lo, sign) -> np.ndarray:
        """Colours ``(n, 3)`` of facade pixels: windows, shop fronts and edges of buildings, leaves, trunks."""
        s, kind = self.s, side.kinds[seg]
        base = side.colours[seg] * (1.1 if sign == s.sun else 0.72)
        floor_y, bay = np.mod(y, 3.2), np.mod(local, 2.6)
        win = (y > 3.2) & (y < side.heights[seg] - 1.0) & (floor_y > 0.9) & (floor_y < 2.3) & (bay > 0.7) & (bay < 1.9)
        lit = _hash(np.floor(local / 2.6) + 1000 * seg, np.floor(y / 3.2), side.salt) > 0.85
        glass = _GLASS + 0.5 * lit[:, None] * _WARM_LIGHT
        shop = (y < 2.8) & (np.mod(local, 5.0) > 0.6) & (np.mod(local, 5.0) < 4.4)
        building = np.where(win[:, None], glass, np.where(shop[:, None], base * 0.35 + 0.05, base))
        edge = (local < 0.3) | (local > side.starts[seg + 1] - side.starts[seg] - 0.3)
        building = building * np.where(edge, 0.8, 1.0)[:, None]
        detail = _detail(z, s.f, 0.8)[:, None]  # windows fade into the wall's mean colour when below a pixel
        building = building * detail + base * 0.85 * (1 - detail)
        leaf = 0.7 + 0.5 * _value_noise(local * 2.5, y * 2.5, side.salt + 5)[:, None]
        green = _LEAVES * leaf * (1.1 if sign == s.sun else 0.85)
        tree = np.where((y < crown_lo)[:, None], _TRUNK, green)
        return np.select(
            [(kind == 0)[:, None], (kind == 1)[:, None], (kind == 2)[:, None]],
            [building, tree, green * 0.8],
            _GRASS * leaf,
        )

    # -- objects: vehicles, pedestrians, lamps, drawn with a depth test

    def _vehicles(self) -> list[dict]:
        """The vehicles of this frame, with depth ``z`` and lateral position ``xr`` relative to the camera."""
        out = []
        for v in self.s.vehicles:
            if v["lead"]:
                z = v["gap"] + 3.0 * np.sin(2 * np.pi * self.time / 9.0 + v["phase"])
            else:
                z = v["u0"] + v["speed"] * self.time - self.u_cam
                z = _WRAP[0] + np.mod(z - _WRAP[0], _WRAP[1] - _WRAP[0])
            out.append({**v, "z": float(z), "xr": v["x"] - self.cam_x})
        return out

    def _billboard(self, x0: float, x1: float, z: float, parts: list[tuple]) -> None:
        """Draw an upright rectangle facing the camera at depth ``z`` spanning ``[x0, x1]`` (m, camera frame);
        ``parts`` are ``(u0, u1, y0, y1, class, colour)`` with ``u`` across the width in [0, 1], ``y`` in m."""
        s, (h, w) = self.s, self.s.size
        if z < _NEAR:
            return
        top = max(p[3] for p in parts)
        r0, r1 = (
            max(int(np.floor(s.horizon + s.f * (s.cam_h - top) / z)), 0),
            min(int(np.ceil(s.horizon + s.f * s.cam_h / z)) + 1, h),
        )
        c0, c1 = max(int(np.floor(s.cx + s.f * x0 / z)), 0), min(int(np.ceil(s.cx + s.f * x1 / z)) + 1, w)
        if r0 >= r1 or c0 >= c1:
            return
        y = s.cam_h - self.ys[r0:r1] * z / s.f
        u = (self.xs[c0:c1] * z / s.f - x0) / (x1 - x0)
        self._paint(np.s_[r0:r1, c0:c1], y[:, None], u[None, :], np.full((1, c1 - c0), z, np.float32), parts)

    def _side(self, xside: float, z0: float, z1: float, parts: list[tuple]) -> None:
        """Draw a vertical face parallel to the street at lateral ``xside`` from depth ``z0`` to ``z1``; ``u`` of
        the parts runs along it from ``z0`` (0) to ``z1`` (1)."""
        s, (h, w) = self.s, self.s.size
        near = max(z0, _NEAR)
        if z1 <= near or abs(xside) < 1e-3:
            return
        cols = sorted((s.cx + s.f * xside / near, s.cx + s.f * xside / z1))
        c0, c1 = max(int(np.floor(cols[0])), 0), min(int(np.ceil(cols[1])) + 1, w)
        top = max(p[3] for p in parts)
        r0, r1 = (
            max(int(np.floor(s.horizon + s.f * (s.cam_h - top) / near)), 0),
            min(int(np.ceil(s.horizon + s.f * s.cam_h / near)) + 1, h),
        )
        if c0 >= c1 or r0 >= r1:
            return
        xs = self.xs[c0:c1]
        with np.errstate(divide="ignore"):
            z = np.where(xs * xside > 0, s.f * xside / xs, np.inf)
        y = s.cam_h - self.ys[r0:r1, None] * z[None, :] / s.f
        u = ((z - z0) / (z1 - z0))[None, :]
        inside = np.isfinite(z) & (u[0] >= 0) & (u[0] < 1)
        self._paint(np.s_[r0:r1, c0:c1], y, np.where(inside[None, :], u, -1.0), z[None, :].astype(np.float32), parts)

    def _paint(self, region, y, u, z, parts) -> None:
        for u0, u1, y0, y1, cls, colour in parts:
            mask = (y >= y0) & (y < y1) & (u >= u0) & (u < u1)
            mask = mask & (z <= self.depth[region])
            if mask.any():
                self.rgb[region][mask] = colour
                self.labels[region][mask] = cls
                self.depth[region] = np.where(mask, z, self.depth[region])

    def draw_vehicle(self, v: dict) -> None:
        """A vehicle: its back (or, oncoming, its front) facing the camera, and the side turned to the camera."""
        cls, h, colour = v["cls"], v["height"], v["colour"]
        lit = 1.05 if self.s.sun == np.sign(v["xr"]) else 0.8
        lights = _HEADLIGHT if v["speed"] < 0 and not v["lead"] else _TAIL_LIGHT
        car = cls == CAR
        body_top, glass_lo = (0.62 * h, 0.66 * h) if car else (0.9 * h, 0.55 * h)
        cabin = (0.1, 0.9) if car else (0.02, 0.98)
        back = [
            (0.0, 1.0, 0.22, body_top, cls, colour),
            (*cabin, body_top, h, cls, colour * 0.95),
            (0.06, 0.24, 0.0, 0.36, cls, _TYRE),
            (0.76, 0.94, 0.0, 0.36, cls, _TYRE),
            (cabin[0] + 0.06, cabin[1] - 0.06, glass_lo, 0.94 * h, cls, _CAR_GLASS),
            (0.04, 0.17, 0.45 * body_top, 0.6 * body_top, cls, lights),
            (0.83, 0.96, 0.45 * body_top, 0.6 * body_top, cls, lights),
            (0.42, 0.58, 0.3 * body_top, 0.4 * body_top, cls, _PLATE),
        ]
        cabin = (0.18, 0.8) if car else (0.0, 1.0)
        side = [
            (0.0, 1.0, 0.22, body_top, cls, colour * lit * 0.85),
            (*cabin, body_top, h, cls, colour * 0.8),
            (cabin[0] + 0.04, cabin[1] - 0.04, glass_lo + 0.08 * h, 0.94 * h, cls, _CAR_GLASS),
            (0.1, 0.24, 0.0, 0.36, cls, _TYRE),
            (0.76, 0.9, 0.0, 0.36, cls, _TYRE),
        ]
        if abs(v["xr"]) > v["width"] / 2:
            self._side(v["xr"] - np.sign(v["xr"]) * v["width"] / 2, v["z"], v["z"] + v["length"], side)
        self._billboard(v["xr"] - v["width"] / 2, v["xr"] + v["width"] / 2, v["z"], back)

    def draw_pedestrian(self, p: dict) -> None:
        """A pedestrian walking along the sidewalk: legs that swing with the gait, torso, head and hair."""
        z = _WRAP[0] + np.mod(p["u0"] + p["speed"] * self.time - self.u_cam - _WRAP[0], _WRAP[1] - _WRAP[0])
        h, swing = p["height"], 0.12 * np.sin(2 * np.pi * abs(p["speed"]) * self.time / 1.4)
        xr, width = p["x"] - self.cam_x, 0.5
        parts = [
            (0.23 + swing, 0.47 + swing, 0.0, 0.48 * h, PERSON, p["trousers"]),
            (0.53 - swing, 0.77 - swing, 0.0, 0.48 * h, PERSON, p["trousers"]),
            (0.08, 0.92, 0.48 * h, 0.84 * h, PERSON, p["shirt"]),
            (0.3, 0.7, 0.84 * h, h, PERSON, p["skin"]),
            (0.28, 0.72, 0.96 * h, h, PERSON, _HAIR),
        ]
        self._billboard(xr - width / 2, xr + width / 2, float(z), parts)

    def draw_lamps(self) -> None:
        """Street lamps (labelled infrastructure) along both kerbs: a pole and an arm over the road."""
        s = self.s
        first = np.ceil((self.u_cam + _NEAR) / s.lamp_spacing)
        for k in np.arange(first, np.floor((self.u_cam + _WRAP[1]) / s.lamp_spacing) + 1):
            z = k * s.lamp_spacing - self.u_cam
            for sign in (-1, 1):
                x = sign * (s.half + 0.35) - self.cam_x
                self._billboard(x - 0.08, x + 0.08, z, [(0.0, 1.0, 0.0, 7.0, INFRASTRUCTURE, _METAL)])
                arm = (x - sign * 1.6, x) if sign > 0 else (x, x - sign * 1.6)
                self._billboard(*arm, z, [(0.0, 1.0, 6.75, 6.95, INFRASTRUCTURE, _METAL)])

    # -- camera

    def finish(self, rng: np.random.Generator, flicker: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
        """Fog, light, vignetting, illumination flicker and sensor noise; return uint8 RGB and the labels."""
        s, (h, w) = self.s, self.s.size
        finite = np.isfinite(self.depth)
        haze = np.where(finite, 1 - np.exp(-np.where(finite, self.depth, 0) / s.fog), 0.0)[..., None]
        rgb = self.rgb * (1 - haze) + s.sky_horizon * haze
        r2 = (self.xs[None, :] / w * 2) ** 2 + (np.arange(h, dtype=np.float32)[:, None] / h * 2 - 1) ** 2
        gain = (s.light * 255 * (1 + flicker * rng.standard_normal())).astype(np.float32)
        out = rgb * gain * (1 - 0.08 * r2)[..., None] + np.float32(noise) * rng.standard_normal(rgb.shape, np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), self.labels


def render_sequence(
    rng: np.random.Generator, config: DrivingSceneConfig, speed: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one drive: RGB ``(T, H, W, 3)`` uint8 and VIPER class ids ``(T, H, W)`` uint8, same geometry.

    ``speed`` (m/s) defaults to a uniform draw from ``config.speed_range``; every other choice (street layout,
    traffic, light) comes from ``rng`` too.
    """
    speed = float(rng.uniform(*config.speed_range)) if speed is None else float(speed)
    street = _sample_street(rng, config, speed)
    h, w = config.size
    rgb = np.empty((config.frames, h, w, 3), dtype=np.uint8)
    labels = np.empty((config.frames, h, w), dtype=np.uint8)
    for t in range(config.frames):
        frame = _Frame(street, t)
        frame.sky()
        frame.ground()
        frame.facades()
        frame.draw_lamps()
        for p in street.pedestrians:
            frame.draw_pedestrian(p)
        for v in frame.traffic:
            frame.draw_vehicle(v)
        rgb[t], labels[t] = frame.finish(rng, config.flicker, config.noise)
    return rgb, labels


def build_driving_scene(root: str | Path, config: DrivingSceneConfig | None = None) -> Path:
    """Build (once) and cache the procedural driving scene under ``root/<config.folder_name()>``; return it.

    The folder has the VIPER layout, ``train/img/<seq>/<seq>_<frame:05d>.jpg`` (RGB) and
    ``train/cls/<seq>/<seq>_<frame:05d>.png`` (class colours of VIPER_CLASSES), and a ``meta.json`` with the
    settings and each sequence's camera speed. It is written under a temporary name and renamed when complete.
    """
    config = config or DrivingSceneConfig()
    folder = Path(root) / config.folder_name()
    if (folder / "meta.json").is_file():
        return folder
    speeds = {}
    with building_folder(folder) as tmp:
        for name in tqdm(config.sequences, desc=f"rendering {folder.name}", unit="sequence"):
            rng = config.sequence_rng(name)
            speeds[name] = float(rng.uniform(*config.speed_range))
            rgb, labels = render_sequence(rng, config, speeds[name])
            write_viper_sequence(tmp, name, rgb, labels, split="train", image_suffix=".jpg")
        meta = {
            "version": _VERSION,
            "config": config.as_dict(),
            "layout": "VIPER: train/img/<seq>/<seq>_<frame>.jpg, train/cls/<seq>/<seq>_<frame>.png",
            "classes": class_table(),
            "sequences": {
                n: {"speed_m_per_s": round(v, 4), "m_per_frame": round(v / config.fps, 4), "frames": config.frames}
                for n, v in speeds.items()
            },
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder
