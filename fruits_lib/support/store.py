"""The run store: an output folder written by one run at a time, published whole or not at all.

A run holds ``OUTPUT/_lock.json`` (host, pid, run id, start time) from start to end, so a second
run on the same output is refused instead of mixing its staging with the first's. It writes into
``OUTPUT/_runs/<run id>/``; once every result is complete it writes ``_runs/<run id>/_READY.json``
(what to publish), then moves the results it replaces (and the old ``summary.json``) aside into
``_runs/<run id>/_replaced/``, moves the new ones into place, writes ``summary.json`` last and only
then deletes what it replaced. Until then nothing of the previous results is deleted; a run killed
while publishing is rolled forward by the next run from its ``_READY.json``. An output folder
without ``summary.json`` is never complete. Local caches (weights, TFLite models) are written
atomically too (:func:`write_atomically`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql import SparkSession

from fruits_lib.support.errors import OutputError
from fruits_lib.write import FileSystem, join

SUMMARY = "summary.json"
STAGING = "_runs"
LOCK = "_lock.json"
READY = "_READY.json"
REPLACED = "_replaced"
RESULTS = ("features", "errors", "pca", "model", "explained_variance.png")
STALE_LOCK_SECONDS = 24 * 3600  # default age after which another run may take a lock over


def cache_dir() -> Path:
    """Folder of cached weights: ``$FRUITS_CACHE_DIR`` or ``~/.cache/fruits_lib``."""
    return Path(os.environ.get("FRUITS_CACHE_DIR") or Path.home() / ".cache" / "fruits_lib")


def prune_cache(pattern: str, keep: int) -> list:
    """Delete all but the ``keep`` newest files of :func:`cache_dir` matching ``pattern`` (a glob, e.g.
    ``finetuned-*.npz``), with their ``.json`` companion when there is one; returns the deleted paths.

    Newest by modification time: touch a file when it is reused to keep it. The companion goes first, so a
    reader that wants both never finds one without the other's data.
    """
    def newest_first(path: Path) -> int:
        try:
            return -path.stat().st_mtime_ns
        except FileNotFoundError:  # pruned meanwhile by another process
            return 0

    deleted = sorted(cache_dir().glob(pattern), key=newest_first)[keep:]
    for path in deleted:
        path.with_suffix(".json").unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    return deleted


def write_atomically(path: str, data: bytes) -> None:
    """Write via a private temporary name then rename: a concurrent reader never sees half a file,
    a killed writer never leaves a truncated one, and two writing processes never share a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


class RunOutput:
    """The output folder of the pipeline and the staging area of one run inside it."""

    def __init__(self, spark: SparkSession, root: str, run_id: str):
        self.fs = FileSystem(spark)
        self.root = root
        self.run_id = run_id
        self.staging = join(root, STAGING, run_id)

    def path(self, name: str) -> str:
        """Published location of a result."""
        return join(self.root, name)

    def stage(self, name: str) -> str:
        """Where this run writes a result before publishing it."""
        return join(self.staging, name)

    def partition(self, name: str) -> str:
        """Published location of this run's part of an appendable result (``features/run=<id>``)."""
        return join(self.root, name, f"run={self.run_id}")

    def state(self) -> str:
        """``empty``, ``complete`` (has summary.json) or ``incomplete`` (results but no summary)."""
        names = set(self.fs.list(self.root))
        if SUMMARY in names:
            return "complete"
        return "incomplete" if names & set(RESULTS) else "empty"

    def prepare(self, mode: str, overwrite: bool, stale_lock_seconds: float = STALE_LOCK_SECONDS) -> list:
        """Lock the folder, recover an interrupted run, check it may receive this one; returns notes."""
        notes = self.lock(stale_lock_seconds)
        try:
            notes += self._recover()
            state = self.state()
            if state != "empty" and mode == "full" and not overwrite:
                raise OutputError(
                    f"{self.root} already holds {'results' if state == 'complete' else 'an incomplete run'}; "
                    "use --overwrite to replace them, or --mode incremental to add new images"
                )
            try:
                self.fs.mkdirs(self.staging)
                self.fs.write_bytes(self.stage(".write-test"), b"ok")
                self.fs.delete(self.stage(".write-test"))
            except Exception as exc:  # py4j wraps the JVM's IOException
                message = str(exc).strip().splitlines()[0][:200]
                raise OutputError(f"cannot write to {self.root}: {message}") from None
        except BaseException:
            self.unlock()
            raise
        if state == "incomplete":
            notes.append(f"{self.root} held an incomplete run (no {SUMMARY}); it is completed or replaced now")
        return notes

    def lock(self, stale_lock_seconds: float = STALE_LOCK_SECONDS) -> list:
        """Take ``OUTPUT/_lock.json`` or fail with who holds it; a dead or stale holder's lock is taken over."""
        owner = {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
                 "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "started": time.time()}
        path = self.path(LOCK)
        notes = []
        for _ in range(2):
            try:
                self.fs.write_bytes(path, json.dumps(owner).encode(), overwrite=False)
                self._locked = True
                return notes
            except Exception as exc:
                if not self.fs.exists(path):
                    message = str(exc).strip().splitlines()[0][:200]
                    raise OutputError(f"cannot write to {self.root}: {message}") from None
            try:
                holder = self.fs.read_json(path)
            except Exception:  # unreadable (half-written) lock: judged by the file's age alone
                holder = {}
            age = time.time() - float(holder.get("started") or self.fs.modified(path))
            dead = holder.get("host") == owner["host"] and not _alive(holder.get("pid"))
            if not dead and age < stale_lock_seconds:
                raise OutputError(
                    f"{self.root} is being written by run {holder.get('run_id')} (host {holder.get('host')}, "
                    f"pid {holder.get('pid')}, since {holder.get('started_at')}); wait for it, or if it died "
                    f"pass --stale-lock-after SECONDS (lock age {age:.0f} s)")
            why = "its process is gone" if dead else f"it is {age:.0f} s old"
            notes.append(f"took over the lock of run {holder.get('run_id')} ({why})")
            self.fs.delete(path)
        raise OutputError(f"could not take the lock {path}: another run took it first")

    def unlock(self) -> None:
        if getattr(self, "_locked", False):
            self.fs.delete(self.path(LOCK))
            self._locked = False

    def _recover(self) -> list:
        """Finish the publication of a run that was killed while publishing; drop other leftovers."""
        notes = []
        for stale in self.fs.list(join(self.root, STAGING)):
            ready = join(self.root, STAGING, stale, READY)
            if self.fs.exists(ready):
                plan = self.fs.read_json(ready)
                RunOutput._publish_plan(self, join(self.root, STAGING, stale), plan)
                notes.append(f"finished publishing interrupted run {stale}")
            else:
                self.fs.delete(join(self.root, STAGING, stale))
                notes.append(f"removed the leftovers of interrupted run {stale}")
        return notes

    def publish(self, replace: list, append: list, summary: dict, clear: bool = False,
                remove: tuple = (), moves: tuple = ()) -> None:
        """Move staged results into place: ``replace`` ones whole, ``append`` ones as a run partition.

        ``clear`` replaces every earlier result (a full run); ``remove`` names published paths
        (e.g. ``features/run=X``) this run drops; ``moves`` are extra ``[staged, published]`` pairs.
        Nothing is deleted before ``summary.json`` is written.
        """
        moves = ([[name, name] for name in replace] + [[name, f"{name}/run={self.run_id}"] for name in append]
                 + [list(pair) for pair in moves])
        aside = sorted(set(RESULTS if clear else ()) | set(replace) | set(remove))
        plan = {"moves": moves, "aside": aside, "summary": summary}
        self.fs.write_json(self.stage(READY), plan)  # from here on, the run is complete: roll forward
        self._publish_plan(self.staging, plan)
        self.unlock()

    def _publish_plan(self, staging: str, plan: dict) -> None:
        """The idempotent publication steps (also replayed by ``_recover``)."""
        replaced, aside_done = join(staging, REPLACED), join(staging, "_ASIDE_DONE")
        if not self.fs.exists(aside_done):  # once done, what stands there is new: never move it aside
            for name in [SUMMARY] + plan["aside"]:
                if self.fs.exists(self.path(name)) and not self.fs.exists(join(replaced, name)):
                    self.fs.rename(self.path(name), join(replaced, name))
            self.fs.write_bytes(aside_done, b"")
        for source, target in plan["moves"]:
            if self.fs.exists(join(staging, source)):
                self.fs.rename(join(staging, source), self.path(target))
        self.fs.write_json(self.path(SUMMARY), plan["summary"])
        self.fs.delete(staging)  # the replaced results go only now
        if not self.fs.list(join(self.root, STAGING)):
            self.fs.delete(join(self.root, STAGING))

    def discard(self) -> None:
        """Remove this run's staging area and release the lock (after a failure)."""
        self.fs.delete(self.staging)
        if not self.fs.list(join(self.root, STAGING)):
            self.fs.delete(join(self.root, STAGING))
        self.unlock()


def _alive(pid) -> bool:
    """Whether a process with this id runs on this host (a lock held by a dead one is free)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True
