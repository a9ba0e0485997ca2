"""Write results wherever Spark can (local, ``hdfs://``, ``s3://``) and publish them safely.

Files go through Hadoop's FileSystem (the JVM's), so a PNG or ``summary.json`` lands on S3
exactly like the parquet does. A run holds ``OUTPUT/_lock.json`` (host, pid, run id, start
time) from start to end, so a second run on the same output is refused instead of mixing its
staging with the first's. It writes into ``OUTPUT/_runs/<run id>/``; once every result is
complete it writes ``_runs/<run id>/_READY.json`` (what to publish), then moves the results it
replaces (and the old ``summary.json``) aside into ``_runs/<run id>/_replaced/``, moves the new
ones into place, writes ``summary.json`` last and only then deletes what it replaced. Until
then nothing of the previous results is deleted; a run killed while publishing is rolled forward
by the next run from its ``_READY.json``. An output folder without ``summary.json`` is never
complete.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession

from fruits_lib.errors import OutputError

SUMMARY = "summary.json"
STAGING = "_runs"
LOCK = "_lock.json"
READY = "_READY.json"
REPLACED = "_replaced"
RESULTS = ("features", "errors", "pca", "model", "explained_variance.png")
STALE_LOCK_SECONDS = 24 * 3600  # default age after which another run may take a lock over
LARGE_PAYLOAD = 1 << 20  # bytes above which FileSystem moves file contents through a local file, not py4j


@contextmanager
def _local_copy():
    """A private local file name for one transfer; its folder is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fruits-transfer-") as folder:
        yield os.path.join(folder, "payload")


def write_parquet(frame: DataFrame, path: str) -> None:
    """``frame`` as parquet, its float arrays without dictionary encoding.

    1,280 distinct floats per row defeat a dictionary; parquet-mr builds one anyway, then falls
    back to plain encoding, which costs the JVM ~15% of the write (measured on the features).
    """
    writer = frame.write
    for name, dtype in frame.dtypes:
        if dtype.startswith("array<"):
            writer = writer.option(f"parquet.enable.dictionary#{name}.list.element", "false")
    writer.parquet(path)


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for local paths and URIs alike."""
    return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts])


class FileSystem:
    """The few Hadoop FileSystem calls the pipeline needs, on any path Spark can reach."""

    def __init__(self, spark: SparkSession):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _resolve(self, path: str):
        jpath = self._jvm.org.apache.hadoop.fs.Path(path)
        return jpath.getFileSystem(self._conf), jpath

    def exists(self, path: str) -> bool:
        fs, jpath = self._resolve(path)
        return bool(fs.exists(jpath))

    def is_dir(self, path: str) -> bool:
        fs, jpath = self._resolve(path)
        return bool(fs.exists(jpath) and fs.getFileStatus(jpath).isDirectory())

    def list(self, path: str) -> list:
        """Names directly under ``path`` (empty if it does not exist)."""
        fs, jpath = self._resolve(path)
        if not fs.exists(jpath):
            return []
        return sorted(status.getPath().getName() for status in fs.listStatus(jpath))

    def modified(self, path: str) -> float:
        """Modification time of ``path`` in seconds since the epoch."""
        fs, jpath = self._resolve(path)
        return fs.getFileStatus(jpath).getModificationTime() / 1000.0

    def mkdirs(self, path: str) -> None:
        fs, jpath = self._resolve(path)
        fs.mkdirs(jpath)

    def delete(self, path: str) -> None:
        fs, jpath = self._resolve(path)
        fs.delete(jpath, True)

    def rename(self, source: str, target: str) -> None:
        """Move ``source`` to ``target`` (which must not exist); atomic on local and HDFS."""
        fs, src = self._resolve(source)
        dst = self._jvm.org.apache.hadoop.fs.Path(target)
        fs.mkdirs(dst.getParent())
        if fs.exists(dst) or not fs.rename(src, dst):
            raise OutputError(f"could not move {source} to {target}")

    def write_bytes(self, path: str, data: bytes, overwrite: bool = True) -> None:
        """Write a file; with ``overwrite=False`` fail if it exists (atomic on local and HDFS).

        A large payload (a model's network) is handed over as a local temporary file that the JVM
        copies: through py4j it would travel as a base64 string (~1 s each way for 9 MB).
        """
        fs, jpath = self._resolve(path)
        if len(data) <= LARGE_PAYLOAD:
            stream = fs.create(jpath, overwrite)
            try:
                stream.write(bytearray(data))
            finally:
                stream.close()
            return
        with _local_copy() as local:
            with open(local, "wb") as handle:
                handle.write(data)
            target = fs.create(jpath, overwrite)  # first: with overwrite=False an existing file stops here
            self._copy(self._local_fs().open(self._jvm.org.apache.hadoop.fs.Path(local)), target)

    def read_bytes(self, path: str) -> bytes:
        fs, jpath = self._resolve(path)
        length = fs.getFileStatus(jpath).getLen()
        if length > LARGE_PAYLOAD:  # as in write_bytes: a local file instead of a base64 string
            with _local_copy() as local:
                self._copy(fs.open(jpath), self._local_fs().create(self._jvm.org.apache.hadoop.fs.Path(local), True))
                with open(local, "rb") as handle:
                    data = handle.read()
        else:
            buffer = self._jvm.java.io.ByteArrayOutputStream()
            self._copy(fs.open(jpath), buffer)
            data = bytes(buffer.toByteArray())
        if len(data) != length:
            raise OutputError(f"read {len(data)} bytes of {path}, expected {length}")
        return data

    def _local_fs(self):
        """The JVM's raw local file system: temporary transfer files get no ``.crc`` beside them."""
        return self._jvm.org.apache.hadoop.fs.FileSystem.getLocal(self._conf).getRaw()

    def _copy(self, source, target) -> None:
        """Copy a JVM input stream into an output stream and close both (checksums are checked on read)."""
        self._jvm.org.apache.hadoop.io.IOUtils.copyBytes(source, target, 1 << 20, True)

    def write_json(self, path: str, value) -> None:
        self.write_bytes(path, (json.dumps(value, indent=2, sort_keys=False) + "\n").encode())

    def read_json(self, path: str):
        return json.loads(self.read_bytes(path).decode())


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
