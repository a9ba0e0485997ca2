"""fruits_lib.write: Hadoop FileSystem helpers and the staged, summary-last publication."""

import json

import pytest

from fruits_lib.errors import OutputError
from fruits_lib.write import FileSystem, RunOutput, join


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


def test_publish_moves_results_and_writes_summary_last(spark, tmp_path):
    out = RunOutput(spark, str(tmp_path / "out"), "run1")
    assert out.state() == "empty" and out.prepare("full", overwrite=False) == []
    out.fs.write_bytes(out.stage("features/part-0"), b"f")
    out.fs.write_bytes(out.stage("model/x"), b"m")
    assert out.state() == "empty"  # staged results are not results yet
    out.publish(replace=["model"], append=["features"], summary={"run_id": "run1"})
    assert (tmp_path / "out" / "features" / "run=run1" / "part-0").read_bytes() == b"f"
    assert (tmp_path / "out" / "model" / "x").read_bytes() == b"m"
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == {"run_id": "run1"}
    assert out.state() == "complete" and not (tmp_path / "out" / "_runs").exists()
    with pytest.raises(OutputError, match="already holds results"):
        RunOutput(spark, str(tmp_path / "out"), "run2").prepare("full", overwrite=False)


def test_results_without_summary_are_incomplete(spark, tmp_path):
    (tmp_path / "out" / "features").mkdir(parents=True)
    out = RunOutput(spark, str(tmp_path / "out"), "run3")
    assert out.state() == "incomplete"
    with pytest.raises(OutputError, match="incomplete run"):
        out.prepare("full", overwrite=False)
    notes = out.prepare("incremental", overwrite=False)
    assert any("incomplete" in note for note in notes)
