"""Augment: studio photos (one fruit cut out on white) -> scenes that look like people's photos, on Spark.

A Fruits-360 photo is a fruit on pure white, so its mask is nearly free: the white connected to the
border is background. :func:`compose_scene` pastes the cut-out fruit (once, or several times as a
handful of the same fruit) onto a background of :mod:`fruits_lib.support.backgrounds` at a varied scale,
position and rotation (up to overflowing the frame), with a soft shadow, sometimes an occluder, then
changes light, colour balance, perspective, blur, noise and JPEG quality. Every scene is a pure
function of (label/file name, scene index, seed): the same bytes on any machine and in any partition.
:class:`SceneAugmenter` is the Spark ML Transformer that runs it on the executors, beside the featurizer.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import pandas as pd
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasSeed
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from fruits_lib.support import backgrounds
from fruits_lib.support.params import int_between, one_of

WHITE_LEVEL = 228  # a pixel whose every channel is above this may be the studio's white sheet
SCENE_SUFFIX = "#scene-[0-9]+$"  # a scene's path is its photo's plus this (a regular expression)
VIEW_COL = "view"  # "studio" for the photo itself, "scene-<i>" for its composites
SCENE_MARK = "#scene-"  # a scene's path is its photo's path + "#scene-<i>": unique, and traceable


def cutout_mask(pixels: np.ndarray, white_level: int = WHITE_LEVEL) -> np.ndarray:
    """The fruit's alpha in [0, 1] (``(h, w)`` float32) of a photo on white.

    Background is the near-white region connected to the border (a flood fill), so white highlights
    inside the fruit stay fruit. The edge is pulled in by a pixel (no white fringe) and feathered.
    """
    from PIL import Image, ImageFilter

    rgb = np.asarray(pixels)
    near_white = (rgb.min(axis=2) > white_level) & (rgb.max(axis=2).astype(int) - rgb.min(axis=2) < 30)
    background = np.zeros_like(near_white)
    background[0, :], background[-1, :], background[:, 0], background[:, -1] = (
        near_white[0, :], near_white[-1, :], near_white[:, 0], near_white[:, -1])
    while True:  # grow the border's white through white neighbours until it stops
        grown = background.copy()
        grown[1:, :] |= background[:-1, :]
        grown[:-1, :] |= background[1:, :]
        grown[:, 1:] |= background[:, :-1]
        grown[:, :-1] |= background[:, 1:]
        grown &= near_white
        if (grown == background).all():
            break
        background = grown
    fruit = Image.fromarray(np.where(background, 0, 255).astype(np.uint8), "L")
    fruit = fruit.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.GaussianBlur(0.8))
    return np.asarray(fruit, np.float32) / 255.0


def _rgba_fruit(pixels: np.ndarray, alpha: np.ndarray):
    from PIL import Image

    rgba = np.dstack([pixels, (alpha * 255).round().astype(np.uint8)])
    box = np.argwhere(alpha > 0.05)
    if not len(box):
        raise ValueError("no fruit found on the white background (the photo is all white)")
    (top, left), (bottom, right) = box.min(0), box.max(0) + 1
    return Image.fromarray(rgba[top:bottom, left:right], "RGBA")


def _paste(canvas: np.ndarray, fruit, rng: np.random.Generator, scale: float, centre: tuple) -> None:
    """Paste ``fruit`` (RGBA) rotated, flipped and scaled to ``scale`` x the canvas side at ``centre``,
    over a soft shadow; in place."""
    from PIL import Image, ImageEnhance, ImageFilter

    size = canvas.shape[0]
    if rng.random() < 0.5:
        fruit = fruit.transpose(Image.FLIP_LEFT_RIGHT)
    fruit = fruit.rotate(float(rng.uniform(0, 360)), Image.BICUBIC, expand=True)
    rgb, alpha = fruit.convert("RGB"), fruit.getchannel("A")
    rgb = ImageEnhance.Brightness(rgb).enhance(float(rng.uniform(0.85, 1.15)))
    side = max(8, int(scale * size))
    ratio = side / max(fruit.size)
    new = (max(1, int(fruit.size[0] * ratio)), max(1, int(fruit.size[1] * ratio)))
    rgb, alpha = rgb.resize(new, Image.BICUBIC), alpha.resize(new, Image.BICUBIC)
    left, top = int(centre[0] * size - new[0] / 2), int(centre[1] * size - new[1] / 2)
    # the shadow: the blurred silhouette, offset down-right or down-left, darkening what is below
    spread = max(1.0, 0.04 * side)
    layer = Image.new("L", (size, size), 0)
    offset = (int(rng.uniform(-0.08, 0.08) * side), int(rng.uniform(0.02, 0.1) * side))
    layer.paste(alpha, (left + offset[0], top + offset[1]))
    shadow = np.asarray(layer.filter(ImageFilter.GaussianBlur(spread)), np.float32)[..., None] / 255
    canvas *= 1 - rng.uniform(0.25, 0.55) * shadow
    layer = Image.new("L", (size, size), 0)
    layer.paste(alpha, (left, top))
    colour = Image.new("RGB", (size, size))
    colour.paste(rgb, (left, top))
    a = np.asarray(layer, np.float32)[..., None] / 255
    canvas *= 1 - a
    canvas += np.asarray(colour, np.float32) * a


STYLES = ("scale", "extra", "occluder", "grey")  # what a caller may fix instead of drawing it


def compose_scene(pixels: np.ndarray, rng: np.random.Generator, split: str = "train", size: int = 224,
                  photos: list | None = None, alpha: np.ndarray | None = None, **style) -> bytes:
    """One scene (JPEG bytes, ``size`` x ``size``) showing the fruit of ``pixels`` (a photo on white).

    ``photos``: background photos of ``split`` as :func:`backgrounds.load_photos` gives them (None: only
    procedural textures). Label-preserving: every fruit pasted is this photo's fruit. ``style`` fixes
    what is otherwise drawn: ``scale`` (the fruit's side / the frame's), ``extra`` (more fruits),
    ``occluder`` and ``grey`` (booleans); the random stream is consumed the same way either way.
    """
    from PIL import Image, ImageFilter

    unknown = sorted(set(style) - set(STYLES))
    if unknown:
        raise ValueError(f"unknown scene style {unknown}; known: {', '.join(STYLES)}")
    alpha = cutout_mask(pixels) if alpha is None else alpha
    fruit = _rgba_fruit(pixels, alpha)
    canvas = backgrounds.background(split, rng, size, photos or []).copy()
    extra = int(rng.choice([0, 1, 2, 3], p=[0.6, 0.2, 0.12, 0.08]))  # a handful of the same fruit
    main_scale = float(rng.choice([rng.uniform(0.3, 0.75), rng.uniform(0.75, 1.3)], p=[0.65, 0.35]))
    extra = extra if style.get("extra") is None else int(style["extra"])
    main_scale = main_scale if style.get("scale") is None else float(style["scale"])
    for _ in range(extra):
        _paste(canvas, fruit, rng, main_scale * rng.uniform(0.6, 1.0), tuple(rng.uniform(0.05, 0.95, 2)))
    _paste(canvas, fruit, rng, main_scale, tuple(np.clip(rng.normal(0.5, 0.12, 2), 0.2, 0.8)))
    occlude = rng.random() < 0.15
    if occlude if style.get("occluder") is None else style["occluder"]:  # a hand, a leaf, a bowl's rim
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        cx, cy = rng.uniform(0.2, 0.8, 2) + rng.choice([-0.3, 0.3], 2)
        blob = (((xx - cx) / rng.uniform(0.1, 0.3)) ** 2 + ((yy - cy) / rng.uniform(0.1, 0.3)) ** 2) < 1
        tone = rng.choice([np.array([224, 172, 140]), np.array([60, 120, 40]), backgrounds._colour(rng)])
        canvas[blob] = tone * rng.uniform(0.7, 1.1)
    # light and camera: exposure, contrast, white balance, a light gradient, saturation
    canvas = canvas * rng.uniform(0.6, 1.25)
    mean = canvas.mean()
    canvas = (canvas - mean) * rng.uniform(0.75, 1.25) + mean
    canvas *= 1 + rng.normal(0, 0.06, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    canvas *= (1 + rng.uniform(0, 0.4) * (np.cos(angle) * xx + np.sin(angle) * yy))[..., None]
    grey = canvas.mean(axis=2, keepdims=True)
    saturation = 0.0 if rng.random() < 0.04 else rng.uniform(0.7, 1.3)
    saturation = saturation if style.get("grey") is None else (0.0 if style["grey"] else max(saturation, 0.7))
    canvas = grey + (canvas - grey) * saturation
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:  # perspective: the phone not square to the table
        inward = np.array([1, 1, 1, -1, -1, -1, -1, 1], np.float32)  # corners move inside: no empty border
        corners = np.array([0, 0, 0, size, size, size, size, 0], np.float32) + inward * rng.uniform(0, 0.1, 8) * size
        image = image.transform((size, size), Image.QUAD, tuple(corners.tolist()), Image.BILINEAR)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.8))))
    if rng.random() < 0.3:
        noisy = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(2, 8), (size, size, 3))
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(35, 96)))
    return buffer.getvalue()


def scene_rng(path: str, index: int, seed: int) -> np.random.Generator:
    """The random stream of one scene: keyed by the photo's ``label/file name`` (not where it sits)."""
    key = "/".join(path.split(SCENE_MARK)[0].rstrip("/").split("/")[-2:])
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode()), int(index)])


def scenes_of(content: bytes, path: str, count: int, seed: int, split: str, size: int, photos: list) -> list:
    """``count`` scenes (JPEG bytes) of the photo ``content``; a photo that cannot be read gets none
    (the featurizer reports it on the photo's own row)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as image:
            pixels = np.asarray(image.convert("RGB"))
        alpha = cutout_mask(pixels)
    except Exception:  # noqa: BLE001 - unreadable: its studio row carries the featurizer's reason
        return []
    scenes = []
    for index in range(count):
        try:
            scenes.append(compose_scene(pixels, scene_rng(path, index, seed), split, size, photos, alpha))
        except ValueError:  # an all-white photo has no fruit to paste
            break
    return scenes


_PHOTOS: dict = {}  # split -> decoded background photos: the per-Python-worker cache


def _worker_photos(broadcast, split: str) -> list:
    if split not in _PHOTOS:
        _PHOTOS[split] = broadcast.value
    return _PHOTOS[split]


class _AugmenterParams(HasInputCol, HasSeed):
    """The augmenter's params, validated when set (typeConverter) and read through typed getters."""

    scenesPerImage = Param(Params._dummy(), "scenesPerImage", "scenes made from each photo (0: none)",
                           typeConverter=int_between("scenesPerImage", 0, 1000))
    imageSize = Param(Params._dummy(), "imageSize", "side in pixels of each scene",
                      typeConverter=int_between("imageSize", 32, 1024, " pixels"))
    backgrounds = Param(Params._dummy(), "backgrounds", "which backgrounds: train or heldout",
                        typeConverter=one_of("backgrounds", backgrounds.SPLITS))
    keepOriginal = Param(Params._dummy(), "keepOriginal", "keep each photo's own row (view = studio)",
                         typeConverter=TypeConverters.toBoolean)

    def getScenesPerImage(self) -> int:
        return self.getOrDefault(self.scenesPerImage)

    def getImageSize(self) -> int:
        return self.getOrDefault(self.imageSize)

    def getBackgrounds(self) -> str:
        return self.getOrDefault(self.backgrounds)

    def getKeepOriginal(self) -> bool:
        return self.getOrDefault(self.keepOriginal)


class SceneAugmenter(Transformer, _AugmenterParams, DefaultParamsReadable, DefaultParamsWritable):
    """Spark ML Transformer: each photo row -> itself (``view`` = ``studio``) plus ``scenesPerImage``
    scene rows (``view`` = ``scene-<i>``, ``path`` = photo path + ``#scene-<i>``, same label, new bytes).

    Runs in ``mapInPandas`` on the executors; the background photos are read once on the driver and
    broadcast, like the network.
    """

    @keyword_only
    def __init__(self, *, inputCol="content", scenesPerImage=2, imageSize=224, backgrounds="train",
                 keepOriginal=True, seed=0):
        super().__init__()
        self._setDefault(inputCol="content", scenesPerImage=2, imageSize=224, backgrounds="train",
                         keepOriginal=True, seed=0)
        self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        count, size, split = self.getScenesPerImage(), self.getImageSize(), self.getBackgrounds()
        content, seed, keep = self.getInputCol(), int(self.getSeed()), self.getKeepOriginal()
        for column in ("path", content):
            if column not in dataset.columns:
                raise ValueError(f"SceneAugmenter needs a {column!r} column; found {dataset.columns}")
        broadcast = dataset.sparkSession.sparkContext.broadcast(backgrounds.load_photos(split))
        columns = dataset.columns
        schema = StructType([*dataset.schema.fields, StructField(VIEW_COL, StringType(), False)])  # a new one

        def augment(batches):
            photos = _worker_photos(broadcast, split)
            for batch in batches:
                rows = []
                for record in batch.itertuples(index=False):
                    record = dict(zip(columns, record))
                    if keep:
                        rows.append({**record, VIEW_COL: "studio"})
                    made = scenes_of(record[content], record["path"], count, seed, split, size, photos)
                    for index, scene in enumerate(made):
                        rows.append({**record, "path": f"{record['path']}{SCENE_MARK}{index}", content: scene,
                                     VIEW_COL: f"scene-{index}", **({"length": len(scene)}
                                                                  if "length" in record else {})})
                yield pd.DataFrame(rows, columns=[*columns, VIEW_COL])

        return dataset.mapInPandas(augment, schema)


def source_path(path_col: str = "path"):
    """The photo a row comes from: its path without ``#scene-<i>`` (a JVM expression)."""
    return F.regexp_replace(F.col(path_col), SCENE_SUFFIX, "")
