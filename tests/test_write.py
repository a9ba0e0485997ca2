"""fruits_lib.write: Hadoop FileSystem helpers and parquet writing."""

import os

import pytest

from fruits_lib.support.errors import OutputError
from fruits_lib.write import FileSystem, join, write_parquet


def test_join_handles_uris_and_slashes():
    assert join("s3://bucket/out/", "features", "/run=1") == "s3://bucket/out/features/run=1"
    assert join("/tmp/out", "summary.json") == "/tmp/out/summary.json"


def test_filesystem_round_trips_bytes_and_json(spark, tmp_path):
    fs = FileSystem(spark)
    fs.write_bytes(str(tmp_path / "a" / "b.bin"), b"\x00\x01binary")
    assert fs.read_bytes(str(tmp_path / "a" / "b.bin")) == b"\x00\x01binary"
    fs.write_json(str(tmp_path / "s.json"), {"k": 3})
    assert fs.read_json(str(tmp_path / "s.json")) == {"k": 3}
    assert fs.list(str(tmp_path)) == ["a", "s.json"] and fs.is_dir(str(tmp_path / "a"))
    fs.rename(str(tmp_path / "a"), str(tmp_path / "c" / "a"))
    assert fs.exists(str(tmp_path / "c" / "a" / "b.bin")) and not fs.exists(str(tmp_path / "a"))
    with pytest.raises(OutputError, match="could not move"):
        fs.rename(str(tmp_path / "s.json"), str(tmp_path / "c"))


def test_large_payloads_go_through_a_local_file_not_py4j(spark, tmp_path, monkeypatch):
    """Above LARGE_PAYLOAD (a model's 9 MB network) the bytes take Hadoop's copy from/to a local file;
    py4j's base64 string would cost ~1 s each way. Same bytes back, overwrite kept, temp files gone."""
    from fruits_lib import write

    payload = os.urandom(write.LARGE_PAYLOAD + 12345)
    target = str(tmp_path / "net" / "network.npz")
    fs = FileSystem(spark)
    fs.write_bytes(target, b"old")
    sent = []
    monkeypatch.setattr(write.tempfile, "TemporaryDirectory", _recording(write.tempfile.TemporaryDirectory, sent))
    fs.write_bytes(target, payload)
    assert fs.read_bytes(target) == payload
    assert len(sent) == 2 and not any(os.path.exists(folder) for folder in sent)  # one each way, cleaned up
    fs.write_bytes(target, b"small")  # a small one still goes through py4j, and replaces it
    assert fs.read_bytes(target) == b"small" and len(sent) == 2


def _recording(factory, folders):
    def make(*args, **kwargs):
        folder = factory(*args, **kwargs)
        folders.append(folder.name)
        return folder
    return make


def test_write_parquet_keeps_dictionaries_off_float_arrays_only(spark, tmp_path):
    """Repeated values would be dictionary-encoded by default: the per-column option must turn that
    off for the array column and leave strings alone (parquet-mr's ``#column`` syntax; an upgrade
    that drops it makes the array column PLAIN_DICTIONARY again)."""
    import pyarrow.parquet as pq

    frame = spark.createDataFrame([(f"p{i % 3}", [0.5] * 16) for i in range(50)], "path string, features array<float>")
    write_parquet(frame.coalesce(1), str(tmp_path / "plain"))
    frame.coalesce(1).write.parquet(str(tmp_path / "default"))

    def encodings(folder):
        meta = pq.ParquetFile(next(folder.glob("*.parquet"))).metadata.row_group(0)
        return {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}

    plain, default = encodings(tmp_path / "plain"), encodings(tmp_path / "default")
    assert "PLAIN_DICTIONARY" in default["features.list.element"]  # what the option has to undo
    assert "PLAIN_DICTIONARY" not in plain["features.list.element"]
    assert "PLAIN_DICTIONARY" in plain["path"]
