"""Tests for ``fruits_lib.support.sample``: the generator of the committed ``data_sample/`` set (no Spark)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fruits_lib.support.sample import FRUITS, make_sample

DATA_SAMPLE = Path(__file__).resolve().parents[1] / "data_sample"
REGENERATE = (
    "python -c \"from fruits_lib.support.sample import make_sample; "
    "make_sample('data_sample', overwrite=True)\""
)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A full default-arguments generation, as used for ``data_sample/``."""
    out = tmp_path_factory.mktemp("fresh")
    make_sample(out)
    return out


def test_counts_and_layout(fresh):
    assert len(FRUITS) >= 8
    labels = sorted(p.name for p in fresh.iterdir())
    assert labels == sorted(FRUITS)
    for label in labels:
        names = sorted(p.name for p in (fresh / label).iterdir())
        assert names == [f"{label}_{i:03d}.jpg" for i in range(20)]


def test_return_value_and_class_subset(tmp_path):
    counts = make_sample(tmp_path, per_class=3, size=64, classes=["lime", "kiwi"])
    assert counts == {"lime": 3, "kiwi": 3}
    assert _files(tmp_path) == [f"{lab}/{lab}_{i:03d}.jpg" for lab in ("kiwi", "lime") for i in range(3)]
    with Image.open(tmp_path / "kiwi" / "kiwi_000.jpg") as im:
        assert im.size == (64, 64)


def test_images_are_100x100_rgb_jpeg_with_white_corners(fresh):
    for rel in _files(fresh):
        with Image.open(fresh / rel) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (100, 100)), rel
        px = _pixels(fresh / rel)
        for corner in (px[:6, :6], px[:6, -6:], px[-6:, :6], px[-6:, -6:]):
            assert corner.min() >= 250, f"{rel}: background corner is not white"
        fruit = (px.min(axis=2) < 230).mean()
        assert 0.05 < fruit < 0.8, f"{rel}: fruit covers {fruit:.0%} of the image"


def test_deterministic_and_seed_dependent(tmp_path):
    kw = {"per_class": 2, "classes": ["apple", "grape", "strawberry"]}
    make_sample(tmp_path / "a", **kw)
    make_sample(tmp_path / "b", **kw)
    make_sample(tmp_path / "c", seed=1, **kw)
    files = _files(tmp_path / "a")
    assert files == _files(tmp_path / "b") == _files(tmp_path / "c")
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
        assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes(), rel


def test_views_of_one_class_differ(fresh):
    first, second = _pixels(fresh / "banana" / "banana_000.jpg"), _pixels(fresh / "banana" / "banana_001.jpg")
    assert np.abs(first - second).mean() > 5


def test_committed_data_sample_is_up_to_date(fresh):
    if not DATA_SAMPLE.is_dir():
        pytest.fail(f"{DATA_SAMPLE} is missing; regenerate it with: {REGENERATE}")
    assert _files(DATA_SAMPLE) == _files(fresh), f"file list differs; regenerate with: {REGENERATE}"
    for rel in _files(fresh):
        # Pixel tolerance rather than bytes: other libjpeg / Pillow builds encode slightly differently.
        diff = np.abs(_pixels(DATA_SAMPLE / rel) - _pixels(fresh / rel))
        assert diff.mean() < 1.5 and diff.max() < 48, f"{rel} differs; regenerate with: {REGENERATE}"


def test_refuses_non_empty_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty.*overwrite=True"):
        make_sample(tmp_path, per_class=1)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_overwrite_removes_only_its_own_files(tmp_path):
    make_sample(tmp_path, per_class=3, classes=["lemon"])
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "other_000.jpg").write_bytes(b"not ours")
    (tmp_path / "lemon" / "README").write_text("keep me too")
    assert make_sample(tmp_path, per_class=1, classes=["lemon"], overwrite=True) == {"lemon": 1}
    assert sorted(p.name for p in (tmp_path / "lemon").iterdir()) == ["README", "lemon_000.jpg"]
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "other" / "other_000.jpg").read_bytes() == b"not ours"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"classes": ["durian"]}, "unknown classes"), ({"per_class": 0}, "per_class"), ({"size": 4}, "size")],
)
def test_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_sample(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- augment (the scale benchmark's sets)
def _digests(root: Path) -> dict:
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.jpg")}


def test_augment_is_deterministic_whatever_the_process_count(tmp_path):
    from fruits_lib.support.sample import augment

    one = augment(DATA_SAMPLE, tmp_path / "one", 40, workers=1, log=None)
    two = augment(DATA_SAMPLE, tmp_path / "two", 40, workers=2, log=None)
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")
    assert len(_digests(tmp_path / "one")) == one["written"] == two["written"] == 40
    # round-robin over the 8 labels: every label gets 40 / 8 images
    assert one["labels"] == {label: 5 for label in sorted(FRUITS)}
    other = augment(DATA_SAMPLE, tmp_path / "other", 40, seed=1, workers=1, log=None)
    assert other["written"] == 40 and _digests(tmp_path / "other") != _digests(tmp_path / "one")


def test_augmented_images_are_new_views_of_their_photo(tmp_path):
    from fruits_lib.support.sample import augment

    augment(DATA_SAMPLE, tmp_path / "aug", 16, workers=1, log=None)
    for path in sorted((tmp_path / "aug").rglob("*.jpg")):
        stem = path.stem.rsplit("_a", 1)[0]
        original = DATA_SAMPLE / path.parent.name / f"{stem}.jpg"
        assert original.exists(), f"{path} names no photo of its label"
        pixels, before = _pixels(path), _pixels(original)
        assert pixels.shape == before.shape  # same size as the photo
        assert np.abs(pixels - before).mean() > 2.0  # but other pixels


def test_augment_refuses_a_non_empty_output_and_reports_unreadable_photos(tmp_path):
    from fruits_lib.support.sample import AUGMENT_MANIFEST, augment

    source = tmp_path / "photos"
    (source / "kiwi").mkdir(parents=True)
    (source / "kiwi" / "broken.jpg").write_bytes(b"not a jpeg")
    Image.open(DATA_SAMPLE / "kiwi" / "kiwi_000.jpg").save(source / "kiwi" / "good.jpg")
    made = augment(source, tmp_path / "out", 4, workers=1, log=None)
    assert made["written"] == 2  # the broken photo's two copies are missing, and said so
    assert [(Path(u["path"]).name, "UnidentifiedImageError" in u["reason"]) for u in made["unreadable_sources"]] == [
        ("broken.jpg", True)]
    assert (tmp_path / "out" / AUGMENT_MANIFEST).exists()
    with pytest.raises(ValueError, match="not empty"):
        augment(source, tmp_path / "out", 4, log=None)
    with pytest.raises(ValueError, match="must not contain each other"):
        augment(source, source / "inside", 4, log=None)


def test_cli_make_sample_augments_or_says_what_is_missing(tmp_path, capsys, monkeypatch):
    from fruits_lib import cli

    def fruits(*args):
        with pytest.raises(SystemExit) as stopped:
            cli.main([str(a) for a in args])
        return stopped.value.code, capsys.readouterr()

    code, out = fruits("make-sample", "--augment", "--count", "3")
    assert code == 2 and "missing --from, --output" in out.err
    code, out = fruits("make-sample", "--from", DATA_SAMPLE, "--augment", "--count", "8", "--output", tmp_path / "aug")
    assert code == 0 and f"wrote 8 augmented images of 160 photos under {tmp_path / 'aug'}" in out.out
    monkeypatch.chdir(tmp_path)  # the default output, data_sample, is relative to the working folder
    code, out = fruits("make-sample", "--per-class", "1")
    assert code == 0 and "8 classes under data_sample:" in out.out and (tmp_path / "data_sample" / "kiwi").is_dir()
