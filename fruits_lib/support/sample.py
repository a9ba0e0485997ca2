"""Deterministic image sets: the synthetic ``data_sample/`` and augmented copies of real photos.

Fruits-360 photos are 100x100 JPEGs of one centred fruit on a pure white background, shot
while the fruit turns. We draw look-alikes with PIL so that tests, demos and CI can run the
pipeline without downloading the real dataset. Every image is a pure function of (seed, label, index).
:func:`augment` multiplies real photos (flips, rotations, crops) into sets of any size, e.g. the
50,000 images of the scale benchmark, each a pure function of (photo, index, seed).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SS = 3  # supersampling: draw 3x larger, shrink once -> smooth edges
TAU = 2 * np.pi


class _Canvas:
    """An RGB layer and its alpha mask drawn together; coordinates are fractions of the side."""

    def __init__(self, side: int, rng: np.random.Generator):
        self.s, self.rng = side, rng
        self.rgb = Image.new("RGB", (side, side), (255, 255, 255))
        self.mask = Image.new("L", (side, side), 0)
        self._d, self._m = ImageDraw.Draw(self.rgb), ImageDraw.Draw(self.mask)

    def _px(self, pts):
        return [(float(x) * self.s, float(y) * self.s) for x, y in pts]

    def ellipse(self, cx, cy, rx, ry, fill, outline=None, width=0.0, solid=True):
        box = self._px([(cx - rx, cy - ry), (cx + rx, cy + ry)])
        self._d.ellipse(box, fill=fill, outline=outline, width=int(width * self.s))
        if solid:  # details inside the body (seeds, pores) leave the mask alone
            self._m.ellipse(box, fill=255)

    def polygon(self, pts, fill, solid=True):
        self._d.polygon(self._px(pts), fill=fill)
        if solid:
            self._m.polygon(self._px(pts), fill=255)

    def line(self, pts, fill, width, solid=True):
        w = max(1, int(width * self.s))
        self._d.line(self._px(pts), fill=fill, width=w, joint="curve")
        if solid:
            self._m.line(self._px(pts), fill=255, width=w, joint="curve")

    def dots(self, n, cx, cy, rx, ry, r, fill):
        """Scatter ``n`` small dots uniformly inside an ellipse (pores, freckles, seeds)."""
        rad, ang = np.sqrt(self.rng.uniform(0, 1, n)), self.rng.uniform(0, TAU, n)
        for q, t in zip(rad, ang):
            self.ellipse(cx + rx * q * np.cos(t), cy + ry * q * np.sin(t), r, r, fill, solid=False)


def _apple(cv):
    for dx in (-0.07, 0.07):
        cv.ellipse(0.5 + dx, 0.53, 0.28, 0.29, (185, 25, 35))
    cv.ellipse(0.5, 0.6, 0.25, 0.22, (185, 25, 35))  # fills the notch between the two lobes below
    cv.dots(25, 0.5, 0.56, 0.27, 0.25, 0.005, (215, 120, 90))
    cv.ellipse(0.5, 0.28, 0.05, 0.025, (120, 30, 25), solid=False)
    cv.line([(0.5, 0.3), (0.51, 0.2), (0.54, 0.12)], (95, 60, 30), 0.025)
    cv.polygon([(0.52, 0.19), (0.6, 0.11), (0.7, 0.12), (0.62, 0.19)], (70, 140, 40))


def _banana(cv):
    def at(t, r):  # a point on the arc of radius r around (0.5, 0.12)
        return 0.5 + r * np.cos(t), 0.12 + r * np.sin(t)

    u = np.linspace(0, 1, 48)
    th, thick = np.radians(45 + 90 * u), 0.03 + 0.19 * np.sin(np.pi * u) ** 0.4
    outer, inner = [at(t, 0.52) for t in th], [at(t, 0.52 - k) for t, k in zip(th, thick)]
    cv.polygon(outer + inner[::-1], (245, 212, 55))
    cv.line([at(t, 0.52 - 0.4 * k) for t, k in zip(th[4:-4], thick[4:-4])], (220, 185, 40), 0.01, solid=False)
    for t in cv.rng.uniform(th[6], th[-6], 14):  # freckles
        cv.ellipse(*at(t, 0.52 - cv.rng.uniform(0.03, 0.15)), 0.007, 0.007, (120, 85, 30), solid=False)
    end = at(th[-1], 0.505)
    cv.line([end, (end[0] - 0.06, end[1] - 0.05)], (110, 120, 40), 0.035)  # stalk
    cv.ellipse(*at(th[0], 0.505), 0.018, 0.018, (60, 45, 25))


def _lemon(cv):
    t = np.linspace(0, TAU, 120, endpoint=False)
    tip = 1 + 0.16 * np.abs(np.cos(t)) ** 24  # pointed ends
    cv.polygon(list(zip(0.5 + 0.34 * np.cos(t) * tip, 0.5 + 0.25 * np.sin(t))), (250, 222, 45))
    cv.dots(90, 0.5, 0.5, 0.32, 0.23, 0.005, (225, 190, 30))
    cv.ellipse(0.5 + 0.39, 0.5, 0.012, 0.012, (150, 150, 40), solid=False)


def _lime(cv):
    cv.ellipse(0.5, 0.5, 0.33, 0.32, (95, 170, 45))
    cv.dots(110, 0.5, 0.5, 0.31, 0.3, 0.005, (70, 135, 30))
    cv.ellipse(0.5, 0.5, 0.025, 0.025, (120, 110, 50), solid=False)


def _orange(cv):
    cv.ellipse(0.5, 0.5, 0.37, 0.36, (248, 140, 25))
    cv.dots(260, 0.5, 0.5, 0.35, 0.34, 0.0055, (215, 105, 15))
    cv.ellipse(0.5, 0.5, 0.02, 0.02, (150, 110, 40), solid=False)


def _grape(cv):
    cv.line([(0.5, 0.1), (0.5, 0.2), (0.42, 0.26)], (100, 75, 40), 0.02)
    rows = [(0.24, 4), (0.38, 4), (0.52, 3), (0.65, 2), (0.78, 1)]
    for y, n in rows:
        for k in range(n):
            x = 0.5 + (k - (n - 1) / 2) * 0.15 + cv.rng.normal(0, 0.01)
            c = tuple(int(v) for v in np.array((100, 40, 115)) * cv.rng.uniform(0.8, 1.15))
            cv.ellipse(x, y + cv.rng.normal(0, 0.01), 0.085, 0.09, c, outline=(45, 15, 55), width=0.008)
            cv.ellipse(x - 0.03, y - 0.035, 0.018, 0.014, (190, 160, 200), solid=False)


def _strawberry(cv):
    t = np.linspace(0, TAU, 120, endpoint=False)
    x = 0.5 + 0.4 * np.sin(t) * np.abs(np.sin(t / 2)) ** 1.3
    y = 0.48 + 0.4 * np.cos(t)
    cv.polygon(list(zip(x, y)), (215, 30, 45))
    for yy in np.arange(0.22, 0.82, 0.06):  # seeds on a staggered grid inside the body
        for xx in np.arange(0.2 + (yy * 50 % 2) * 0.03, 0.8, 0.06):
            if cv.mask.getpixel((int(xx * cv.s), int((yy + 0.03) * cv.s))) == 255:
                cv.ellipse(xx, yy, 0.008, 0.012, (240, 210, 90), solid=False)
    for a in np.radians([-160, -120, -90, -60, -20, 200, 160, 20]):
        tip = (0.5 + 0.2 * np.cos(a), 0.14 + 0.11 * abs(np.sin(a)) + 0.04)
        cv.polygon([(0.47, 0.1), (0.53, 0.1), tip], (60, 150, 45))
    cv.line([(0.5, 0.12), (0.52, 0.07)], (70, 120, 40), 0.025)


def _kiwi(cv):
    def ring(r, a):  # a point on the ellipse of "radius" r around the core (slice is wider than tall)
        return 0.5 + r * np.cos(a), 0.5 + 0.82 * r * np.sin(a)

    cv.ellipse(0.5, 0.5, 0.37, 0.32, (125, 90, 50))  # brown skin
    cv.ellipse(0.5, 0.5, 0.34, 0.29, (125, 180, 40))  # green flesh with lighter rays
    for a in np.linspace(0, TAU, 36, endpoint=False):
        cv.line([ring(0.1, a), ring(0.3, a)], (160, 205, 80), 0.006, solid=False)
    cv.ellipse(0.5, 0.5, 0.1, 0.075, (235, 235, 195), solid=False)
    for a in np.linspace(0, TAU, 30, endpoint=False) + cv.rng.normal(0, 0.05, 30):
        cv.ellipse(*ring(0.1 * cv.rng.uniform(1.15, 1.5), a), 0.01, 0.01, (25, 20, 15), solid=False)


# label -> (drawer, max rotation in degrees, specular shine)
FRUITS = {
    "apple": (_apple, 35, 0.35),
    "banana": (_banana, 180, 0.1),
    "lemon": (_lemon, 180, 0.3),
    "lime": (_lime, 180, 0.3),
    "orange": (_orange, 180, 0.15),
    "grape": (_grape, 30, 0.05),
    "strawberry": (_strawberry, 30, 0.3),
    "kiwi": (_kiwi, 180, 0.0),
}


def render(label: str, index: int, size: int = 100, seed: int = 0) -> Image.Image:
    """One ``size`` x ``size`` RGB view of ``label``: a pure function of its arguments."""
    draw, max_rot, shine = FRUITS[label]
    rng = np.random.default_rng([seed, zlib.crc32(label.encode()), index])
    side = size * SS
    cv = _Canvas(side, rng)
    draw(cv)
    # A different "view": rotation, scale and a small shift, as one inverse affine map.
    ang, sc = np.radians(rng.uniform(-max_rot, max_rot)), rng.uniform(0.88, 1.05)
    dx, dy = rng.normal(0, 0.015, 2) * side
    c, co, si = side / 2, np.cos(ang) / sc, np.sin(ang) / sc
    aff = (co, si, c - co * (c + dx) - si * (c + dy), -si, co, c + si * (c + dx) - co * (c + dy))
    rgb = cv.rgb.transform((side, side), Image.AFFINE, aff, Image.BICUBIC, fillcolor=(255, 255, 255))
    mask = cv.mask.transform((side, side), Image.AFFINE, aff, Image.BICUBIC, fillcolor=0)
    # Lighting: colour jitter, darker rim (blurred mask), directional light and a highlight.
    f = np.asarray(rgb, np.float32) * (1 + rng.normal(0, 0.04, 3)) * rng.uniform(0.9, 1.06)
    a = np.asarray(mask, np.float32)[..., None] / 255
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(side * 0.06)), np.float32)[..., None] / 255
    yy, xx = (np.mgrid[0:side, 0:side, 0:1].astype(np.float32) / side - 0.5)[:2]
    th = rng.normal(-0.75 * np.pi, 0.35)
    lx, ly = np.cos(th), np.sin(th)
    f = f * (0.45 + 0.55 * np.clip(soft * 1.4, 0, 1)) * (1 + 0.35 * (xx * lx + yy * ly))
    spot = np.exp(-((xx - 0.17 * lx) ** 2 + (yy - 0.17 * ly) ** 2) / (2 * 0.06**2))
    f = f + (255 - f) * np.clip(shine * spot, 0, 1)
    out = 255 * (1 - a) + np.clip(f, 0, 255) * a  # background stays exactly white
    small = np.asarray(Image.fromarray(out.round().astype(np.uint8)).resize((size, size), Image.LANCZOS))
    a_small = np.asarray(mask.resize((size, size), Image.LANCZOS), np.float32)[..., None] / 255
    noisy = small + rng.normal(0, 3.0, small.shape) * np.clip(a_small, 0, 1)  # sensor noise on the fruit only
    return Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))


def make_sample(out_dir, per_class=20, size=100, seed=0, classes=None, overwrite=False) -> dict[str, int]:
    """Write ``<out_dir>/<label>/<label>_<i:03d>.jpg`` (JPEG q90) and return the count per label.

    Refuses a non-empty ``out_dir`` unless ``overwrite=True``; then only the ``<label>_*.jpg``
    files of the requested classes are removed first, anything else in ``out_dir`` is kept.
    """
    if isinstance(classes, str):
        classes = [classes]
    labels = list(FRUITS) if classes is None else list(dict.fromkeys(classes))
    unknown = sorted(set(labels) - set(FRUITS))
    if unknown:
        raise ValueError(f"unknown classes {unknown}; available: {sorted(FRUITS)}")
    if per_class < 1 or size < 16:
        raise ValueError(f"need per_class >= 1 and size >= 16, got per_class={per_class}, size={size}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out} is not empty; pass overwrite=True to replace the sample images in it")
        for label in labels:
            for old in (out / label).glob(f"{label}_*.jpg"):
                old.unlink()
    counts = {}
    for label in labels:
        (out / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            render(label, i, size, seed).save(out / label / f"{label}_{i:03d}.jpg", "JPEG", quality=90)
        counts[label] = per_class
    return counts


# ---------------------------------------------------------------- augmented copies of real photos
AUGMENT_MANIFEST = "_augment.json"  # a leading "_": Spark's file sources never read it as an image


def _augmented_name(source: Path, index: int) -> str:
    return f"{source.stem}_a{index:07d}.jpg"


def augment_image(content: bytes, index: int, seed: int = 0) -> bytes:
    """One augmented view of a photo (JPEG q90 bytes): a pure function of (content, index, seed).

    A random horizontal flip, a rotation on white (the Fruits-360 background), a crop of 80-100 %
    of the side resized back, and a brightness change of +-10 %: new pixels, same fruit and label.
    """
    import io

    from PIL import ImageEnhance, ImageOps

    rng = np.random.default_rng([seed, index])
    with Image.open(io.BytesIO(content)) as opened:
        image = opened.convert("RGB")
    side = image.size
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = image.rotate(float(rng.uniform(0, 360)), Image.BILINEAR, fillcolor=(255, 255, 255))
    scale = rng.uniform(0.8, 1.0)
    width, height = int(round(side[0] * scale)), int(round(side[1] * scale))
    left, top = int(rng.integers(0, side[0] - width + 1)), int(rng.integers(0, side[1] - height + 1))
    image = image.crop((left, top, left + width, top + height)).resize(side, Image.BILINEAR)
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.9, 1.1)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _augment_chunk(jobs: list, seed: int) -> list:
    """Worker body: write each ``(index, source, target)``; returns the failures as ``(source, reason)``."""
    failed = []
    for index, source, target in jobs:
        try:
            data = augment_image(Path(source).read_bytes(), index, seed)
        except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for unreadable images
            failed.append((source, f"{type(exc).__name__}: {str(exc).split(' <')[0]}"))
            continue
        Path(target).write_bytes(data)
    return failed


def augment(source_dir, out_dir, count: int, seed: int = 0, overwrite: bool = False, workers: int | None = None,
            log=print) -> dict:
    """Write ``count`` augmented copies of the photos under ``source_dir`` to ``out_dir/<label>/``.

    Photos are taken round-robin over the labels (so any prefix of the indexes is balanced) and
    the i-th copy is ``augment_image(photo, i, seed)``: the same call writes the same bytes on any
    machine and with any number of ``workers`` (processes). ``out_dir/_augment.json`` records how the
    set was made. A source that cannot be read is reported in the result and skipped.
    """
    from concurrent.futures import ProcessPoolExecutor

    from fruits_lib.load import is_image_path

    source, out = Path(source_dir).resolve(), Path(out_dir).resolve()
    if count < 1:
        raise ValueError(f"count must be a positive number of images, not {count}")
    if not source.is_dir():
        raise ValueError(f"source folder not found: {source}")
    if out == source or source in out.parents or out in source.parents:
        raise ValueError(f"the output {out} and the source {source} must not contain each other")
    photos = sorted(p for p in source.rglob("*") if p.is_file() and is_image_path(p.name)
                    and not p.name.startswith(("_", ".")))
    if not photos:
        raise ValueError(f"no .jpg/.jpeg/.png photo under {source}")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace the augmented set")
        for old in out.glob("*/*_a[0-9][0-9][0-9][0-9][0-9][0-9][0-9].jpg"):
            old.unlink()
        (out / AUGMENT_MANIFEST).unlink(missing_ok=True)
    by_label: dict = {}
    for photo in photos:
        by_label.setdefault(photo.parent.name, []).append(photo)
    groups = [by_label[label] for label in sorted(by_label)]
    ordered = [group[i] for i in range(max(map(len, groups))) for group in groups if i < len(group)]
    jobs = [(i, str(ordered[i % len(ordered)]), str(out / ordered[i % len(ordered)].parent.name /
                                                     _augmented_name(ordered[i % len(ordered)], i)))
            for i in range(count)]
    for label in by_label:
        (out / label).mkdir(parents=True, exist_ok=True)
    chunk = 500
    chunks = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
    failed, done, started = [], 0, time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for part, result in zip(chunks, pool.map(_augment_chunk, chunks, [seed] * len(chunks))):
            failed.extend(result)
            done += len(part)
            if log and (done == count or done // chunk % 10 == 0):
                log(f"  augment: {done}/{count} images ({done / count:.0%}), {time.perf_counter() - started:.0f} s")
    unreadable = sorted(dict(reversed(failed)).items())  # one line per photo, its first reason
    labels = {}
    for _, src, target in jobs:
        if Path(target).exists():
            labels[Path(src).parent.name] = labels.get(Path(src).parent.name, 0) + 1
    manifest = {"source": str(source), "source_photos": len(photos), "count": count, "seed": seed,
                "written": sum(labels.values()), "labels": dict(sorted(labels.items())),
                "unreadable_sources": [{"path": p, "reason": r} for p, r in unreadable],
                "naming": "<label>/<source stem>_a<index>.jpg = augment_image(source, index, seed)"}
    (out / AUGMENT_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest
