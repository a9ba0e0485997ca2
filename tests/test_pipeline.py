"""fruits_lib.pipeline: incremental mode keeps one truth per image: latest version wins, one place per file, one model."""

import os
import shutil

import pandas as pd
import pytest
from helpers import SAMPLE, persisted_rdds
from helpers.images import picture

from fruits_lib.pipeline import run
from fruits_lib.support.errors import OutputError
from fruits_lib.support.store import RunOutput

pytestmark = pytest.mark.slow  # every test runs the chain two or three times


def quiet(message):
    pass


def incremental(spark, source, output, **options):
    options = {"weights": "offline", "image_size": 64, "mode": "incremental", "pca_k": 2, **options}
    return run(str(source), str(output), spark=spark, log=quiet, **options)


def names(frame) -> list:
    return sorted(path.rsplit("/", 1)[-1] for path in frame["path"])


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "input"
    for label in ("apple", "lemon"):
        (folder / label).mkdir(parents=True)
        for image in sorted((SAMPLE / label).iterdir())[:3]:
            shutil.copy2(image, folder / label / image.name)
    (folder / "apple" / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_changed_repaired_and_deleted_files_leave_one_row_each(spark, source, tmp_path):
    output = tmp_path / "out"
    first = incremental(spark, source, output)
    assert (first["images_ok"], first["images_failed"]) == (6, 1)

    changed, repaired, deleted = (source / "apple" / n for n in ("apple_000.jpg", "broken.jpg", "apple_001.jpg"))
    changed.write_bytes(picture(colour=(20, 200, 20)))
    os.utime(changed, (changed.stat().st_atime, changed.stat().st_mtime + 60))
    repaired.write_bytes(picture(colour=(200, 200, 20)))
    deleted.unlink()
    second = incremental(spark, source, output)
    assert second["images_in"] == 2 and second["rows_dropped_outdated"] == 3

    features, errors, pca = (pd.read_parquet(output / name) for name in ("features", "errors", "pca"))
    assert names(features) == names(pca) == ["apple_000.jpg", "apple_002.jpg", "broken.jpg", "lemon_000.jpg",
                                             "lemon_001.jpg", "lemon_002.jpg"]
    assert errors.empty  # the repaired file left errors/
    latest = features.set_index(features["path"].str.rsplit("/", n=1).str[-1])
    assert latest.loc["apple_000.jpg", "length"] == changed.stat().st_size  # the new version, not the old
    assert second["pca_fitted_on"] == 6

    # --pca-reuse: the saved PCA is re-applied and pca/ still holds one row per image
    changed.write_bytes(picture(colour=(20, 20, 200)))
    os.utime(changed, (changed.stat().st_atime, changed.stat().st_mtime + 120))
    reused = incremental(spark, source, output, pca_reuse=True)
    assert reused["pca"] == "reused" and reused["rows_dropped_outdated"] == 1
    features, pca = pd.read_parquet(output / "features"), pd.read_parquet(output / "pca")
    assert names(features) == names(pca) and features["path"].is_unique and pca["path"].is_unique
    assert len(features) == 6


def test_a_run_releases_the_rows_it_persisted_whether_it_ends_or_fails(spark, source, tmp_path, monkeypatch):
    """The featurize output is persisted for the errors, counts and PCA (each image featurized once, as the
    progress bar's count shows): held for the run only."""
    from fruits_lib import pipeline
    from fruits_lib.support.progress import image_counter

    before, featurized = persisted_rdds(spark), image_counter(spark).value
    summary = incremental(spark, source, tmp_path / "out", mode="full")
    assert (summary["images_ok"], summary["images_failed"]) == (6, 1) and persisted_rdds(spark) == before
    assert image_counter(spark).value - featurized == 7, "an image was featurized more than once"
    assert len(pd.read_parquet(tmp_path / "out" / "pca")) == 6 and len(pd.read_parquet(tmp_path / "out" / "errors")) == 1

    def failing_fit(*args, **kwargs):
        raise RuntimeError("fit failed")

    monkeypatch.setattr(pipeline.reduce, "fit_pca", failing_fit)
    with pytest.raises(RuntimeError, match="fit failed"):
        incremental(spark, source, tmp_path / "failed", mode="full")
    assert persisted_rdds(spark) == before, "a failed run left its rows persisted"
    assert not (tmp_path / "failed" / "summary.json").exists()


def test_another_model_is_refused_unless_overwrite(spark, source, tmp_path, random_weights_file):
    output = tmp_path / "out"
    incremental(spark, source, output)
    for options, difference in (({"image_size": 96}, "image size 64 (this run: 96)"),
                                ({"engine": "keras"}, "engine tflite (this run: keras)"),
                                ({"weights": str(random_weights_file), "pca_reuse": True}, "weights sha256")):
        with pytest.raises(OutputError, match="holds results of another model: .*" + difference.replace("(", r"\(")
                           .replace(")", r"\)")):
            incremental(spark, source, output, **options)
    assert pd.read_parquet(output / "features")["run"].nunique() == 1  # nothing was added
    replaced = incremental(spark, source, output, image_size=96, overwrite=True)
    features = pd.read_parquet(output / "features")
    assert replaced["image_size"] == 96 and len(features) == 6 and features["run"].nunique() == 1


def test_a_second_run_on_the_same_output_is_refused(spark, source, tmp_path):
    output = tmp_path / "out"
    holder = RunOutput(spark, str(output), "other-run")
    holder.lock()
    with pytest.raises(OutputError, match=rf"is being written by run other-run \(host .*pid {os.getpid()}"):
        incremental(spark, source, output)
    holder.unlock()
    assert incremental(spark, source, output)["images_ok"] == 6
    assert not (output / "_lock.json").exists()
