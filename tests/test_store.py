"""fruits_lib.support.store: the lock, the staged, summary-last publication, resuming an interrupted run;
the cache's pruning."""

import json
import os

import pytest

from fruits_lib.support.errors import OutputError
from fruits_lib.support.store import RunOutput, prune_cache


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


def publish_run(spark, root, run_id, content):
    out = RunOutput(spark, root, run_id)
    out.prepare("full", overwrite=True)
    out.fs.write_bytes(out.stage("features/part-0"), content)
    out.fs.write_bytes(out.stage("model/x"), content)
    return out


def test_overwrite_keeps_the_old_results_until_the_new_summary_is_written(spark, tmp_path, monkeypatch):
    root = str(tmp_path / "out")
    publish_run(spark, root, "old", b"old").publish(replace=["model"], append=["features"],
                                                      summary={"run_id": "old"}, clear=True)
    # a run that fails before publishing leaves the old results as they were
    publish_run(spark, root, "failed", b"new").discard()
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == {"run_id": "old"}
    assert (tmp_path / "out" / "model" / "x").read_bytes() == b"old"

    # a run killed while publishing: the old results are set aside, never deleted, and the next run
    # finishes the publication from _READY.json
    new = publish_run(spark, root, "new", b"new")
    moved = []

    def crash_when_moving_new_results_in(source, target, original=new.fs.rename):
        if "_replaced" not in target and moved:
            raise KeyboardInterrupt("killed")
        original(source, target)
        moved.append(target)

    monkeypatch.setattr(new.fs, "rename", crash_when_moving_new_results_in)
    with pytest.raises(KeyboardInterrupt):
        new.publish(replace=["model"], append=["features"], summary={"run_id": "new"}, clear=True)
    assert not (tmp_path / "out" / "summary.json").exists()  # an incomplete output never looks complete
    replaced = tmp_path / "out" / "_runs" / "new" / "_replaced"
    assert (replaced / "model" / "x").read_bytes() == b"old"
    assert (replaced / "features" / "run=old" / "part-0").read_bytes() == b"old"
    monkeypatch.undo()
    new.unlock()

    notes = RunOutput(spark, root, "next").prepare("incremental", overwrite=False)
    assert notes == ["finished publishing interrupted run new"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == {"run_id": "new"}
    assert (tmp_path / "out" / "model" / "x").read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "out" / "features").iterdir()) == ["run=new"]
    assert not (tmp_path / "out" / "_runs" / "new").exists()


def write_lock(folder, holder):
    """A lock as another run would have left it (without Hadoop's local .crc side file)."""
    (folder / "_lock.json").write_text(json.dumps(holder))
    (folder / "._lock.json.crc").unlink(missing_ok=True)


def test_a_locked_output_is_refused_until_released_or_stale(spark, tmp_path):
    import subprocess
    import sys
    import time

    root = str(tmp_path / "out")
    first = RunOutput(spark, root, "first")
    assert first.prepare("full", overwrite=False) == []
    holder = json.loads((tmp_path / "out" / "_lock.json").read_text())
    assert holder["run_id"] == "first" and holder["pid"] == os.getpid() and holder["host"] and holder["started_at"]
    with pytest.raises(OutputError, match="is being written by run first .* wait for it, or if it died"):
        RunOutput(spark, root, "second").prepare("incremental", overwrite=False)
    assert (tmp_path / "out" / "_runs" / "first").exists()  # the refused run did not touch the staging
    first.discard()
    assert RunOutput(spark, root, "third").prepare("full", overwrite=False) == []

    # a lock left by a run on another host: taken over only once older than the configured age
    write_lock(tmp_path / "out", {"run_id": "elsewhere", "host": "another-host", "pid": 1,
                                  "started": time.time() - 600})
    with pytest.raises(OutputError, match="run elsewhere .*host another-host"):
        RunOutput(spark, root, "fourth").prepare("incremental", overwrite=False, stale_lock_seconds=3600)
    notes = RunOutput(spark, root, "fifth").prepare("incremental", overwrite=False, stale_lock_seconds=300)
    assert notes[0].startswith("took over the lock of run elsewhere (it is 6")

    # a lock whose process is gone on this host is free at once
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_lock(tmp_path / "out", {"run_id": "dead", "host": holder["host"], "pid": int(gone.stdout),
                                  "started": time.time()})
    notes = RunOutput(spark, root, "sixth").prepare("incremental", overwrite=False)
    assert notes[0] == "took over the lock of run dead (its process is gone)"


def test_the_cache_keeps_the_newest_files_and_their_companions(tmp_path, monkeypatch):
    """Fine-tuned weights (``finetuned-*.npz`` + ``.json``): one per input folder, split and code, 9 MB each."""
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    for age in range(6):  # finetuned-0 is the newest
        for suffix in (".npz", ".json"):
            path = tmp_path / f"finetuned-{age}{suffix}"
            path.write_bytes(b"weights")
            os.utime(path, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / "finetuned-5.npz").touch()  # reused just now: the newest
    (tmp_path / "tflite").mkdir()  # other caches are left alone
    (tmp_path / "tflite" / "model.tflite").write_bytes(b"model")
    deleted = prune_cache("finetuned-*.npz", keep=4)
    assert sorted(p.name for p in deleted) == ["finetuned-3.npz", "finetuned-4.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"finetuned-{n}{suffix}" for n in (0, 1, 2, 5) for suffix in (".json", ".npz")] + ["tflite"]
    assert (tmp_path / "tflite" / "model.tflite").exists() and prune_cache("finetuned-*.npz", keep=4) == []
