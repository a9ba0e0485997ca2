"""fruits_lib.load: paths, labels, case-insensitive extensions, nothing listed twice."""

import pytest
from helpers.images import picture

from fruits_lib import load
from fruits_lib.support.errors import InputError


@pytest.mark.parametrize("path, label", [
    ("file:/data/Training/apple/1_100.jpg", "apple"),
    ("s3://bucket/fruits/Red%20Apple/2.jpg", "Red Apple"),
    ("hdfs://nn/x/P%C3%AAche/3.png", "Pêche"),
    ("file:/data/pomme rouge/été.JPG", "pomme rouge"),
    ("s3://b/Apple+Braeburn/1.jpg", "Apple+Braeburn"),
])
def test_label_is_the_decoded_parent_folder(path, label):
    assert load.label_from_path(path) == label


def test_normalize_path_accepts_local_and_cluster_paths(tmp_path):
    assert load.normalize_path(str(tmp_path)) == str(tmp_path)
    assert load.normalize_path("s3://bucket/prefix") == "s3://bucket/prefix"
    assert load.normalize_path("hdfs://namenode:8020/data") == "hdfs://namenode:8020/data"


@pytest.mark.parametrize("path, message", [
    ("", "empty path"),
    ("ftp://host/images", "unsupported scheme"),
    ("s3://AKIAEXAMPLE:secret@bucket/images", "credentials"),
    ("s3:///images", "names no bucket"),
])
def test_normalize_path_refuses_bad_paths_with_a_clear_message(path, message):
    with pytest.raises(InputError, match=message) as error:
        load.normalize_path(path)
    assert "secret" not in str(error.value)


def test_image_pattern_is_case_insensitive():
    assert all(load.is_image_path(p) for p in ["a.jpg", "a.JPG", "a.Jpeg", "a.png", "a.PNG"])
    assert not any(load.is_image_path(p) for p in ["a.gif", "a.jpg.txt", "README", "a.webp"])


def test_read_images_finds_every_image_once_with_decoded_labels(spark, tmp_path):
    files = {
        "apple/a.jpg": picture(), "apple/b.JPG": picture(), "apple/c.jpeg": picture(),
        "Red Apple/d.PNG": picture(fmt="PNG"), "pêche d'été/e.jpg": picture(),
        "deep/nested/lemon/f.jpg": picture(), "apple/notes.txt": b"not an image",
    }
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)

    images = load.read_images(spark, str(tmp_path))
    rows = images.select("path", "label", "length").collect()
    assert sorted(r["label"] for r in rows) == ["Red Apple", "apple", "apple", "apple", "lemon", "pêche d'été"]
    assert len({r["path"] for r in rows}) == len(rows) == 6
    assert all(r["length"] > 0 for r in rows)
    assert load.label_counts(images) == {"Red Apple": 1, "apple": 3, "lemon": 1, "pêche d'été": 1}
    listed = {r["path"].rsplit("/", 1)[-1]: r["is_image"] for r in load.list_files(spark, str(tmp_path)).collect()}
    assert listed["notes.txt"] is False and listed["b.JPG"] is True and len(listed) == 7


def test_counting_from_the_file_index_agrees_with_a_listing_job(spark, tmp_path):
    from helpers import SAMPLE

    from fruits_lib.load import count_files, count_listed, list_files

    assert count_files(spark, str(SAMPLE)) == count_listed(list_files(spark, str(SAMPLE))) == (160, 0)
    (tmp_path / "kiwi").mkdir()
    (tmp_path / "kiwi" / "a.jpg").write_bytes(b"")  # zero-byte: an image to count (and to report later)
    (tmp_path / "kiwi" / "notes.txt").write_text("not an image")
    assert count_files(spark, str(tmp_path)) == count_listed(list_files(spark, str(tmp_path))) == (1, 1)


def test_counting_many_label_folders_runs_no_spark_job(spark, tmp_path):
    """Spark lists more than 32 folders with a job (parallelPartitionDiscovery); locally the driver does it."""
    from fruits_lib.load import count_files

    for i in range(40):
        (tmp_path / f"label{i:02d}").mkdir()
        (tmp_path / f"label{i:02d}" / "a.jpg").write_bytes(b"x")
    tracker = spark.sparkContext.statusTracker()
    spark.sparkContext.setJobGroup("count-files-test", "count_files on 40 folders")
    try:
        assert count_files(spark, str(tmp_path)) == (40, 0)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert tracker.getJobIdsForGroup("count-files-test") == []


def test_input_files_is_spark_s_listing_fetched_in_one_call(spark, tmp_path, monkeypatch):
    """``load.input_files`` returns what ``DataFrame.inputFiles()`` does, odd names included (a newline in a
    name arrives URI-encoded), without PySpark's two py4j round trips per file; an upgrade that changes
    either side fails here."""
    names = [f"apple/{i:02d}.jpg" for i in range(40)] + ["Red Apple/b c.jpg", "pêche/é%20,;.jpg", "lemon/new\nline.jpg"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    frame = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(str(tmp_path))
    client = type(spark.sparkContext._gateway._gateway_client)  # py4j's: every JVM call goes through it
    calls = []
    sent = client.send_command
    monkeypatch.setattr(client, "send_command", lambda self, *a, **k: calls.append(a) or sent(self, *a, **k))
    expected = frame.inputFiles()
    spark_calls, calls[:] = len(calls), []
    listed = load.input_files(frame)
    assert listed == expected and len(listed) == len(names) and any("%0A" in uri for uri in listed)
    ours = len(calls)
    nothing = spark.read.format("binaryFile").option("pathGlobFilter", "*.none").load(str(tmp_path / "apple"))
    assert load.input_files(nothing) == [] == nothing.inputFiles()
    assert spark_calls > 2 * len(names), spark_calls  # PySpark's: two per file
    assert ours <= 10, ours  # ours: a few, whatever the number of files
