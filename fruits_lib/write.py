"""Write results wherever Spark can (local, ``hdfs://``, ``s3://``) and publish them atomically.

Files go through Hadoop's FileSystem (the JVM's), so a PNG or ``summary.json`` lands on S3
exactly like the parquet does. A run writes into ``OUTPUT/_runs/<run id>/``; publishing
first removes ``summary.json``, moves each result into place and writes ``summary.json``
last: an output folder without ``summary.json`` is never complete.
"""

from __future__ import annotations

import json

from pyspark.sql import SparkSession

from fruits_lib.errors import OutputError

SUMMARY = "summary.json"
STAGING = "_runs"
RESULTS = ("features", "errors", "pca", "model", "explained_variance.png")


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

    def write_bytes(self, path: str, data: bytes) -> None:
        fs, jpath = self._resolve(path)
        stream = fs.create(jpath, True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def read_bytes(self, path: str) -> bytes:
        fs, jpath = self._resolve(path)
        stream = fs.open(jpath)
        try:
            length = fs.getFileStatus(jpath).getLen()
            buffer = self._jvm.java.io.ByteArrayOutputStream()
            self._jvm.org.apache.hadoop.io.IOUtils.copyBytes(stream, buffer, 65536, False)
            data = bytes(buffer.toByteArray())
            assert len(data) == length
            return data
        finally:
            stream.close()

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

    def prepare(self, mode: str, overwrite: bool) -> list:
        """Check the folder can be written and may receive this run; returns notes for the user."""
        notes = []
        state = self.state()
        if state != "empty" and mode == "full" and not overwrite:
            raise OutputError(
                f"{self.root} already holds {'results' if state == 'complete' else 'an incomplete run'}; "
                "use --overwrite to replace them, or --mode incremental to add new images"
            )
        for stale in self.fs.list(join(self.root, STAGING)):
            self.fs.delete(join(self.root, STAGING, stale))
            notes.append(f"removed the leftovers of interrupted run {stale}")
        try:
            self.fs.mkdirs(self.staging)
            self.fs.write_bytes(self.stage(".write-test"), b"ok")
            self.fs.delete(self.stage(".write-test"))
        except Exception as exc:  # py4j wraps the JVM's IOException
            message = str(exc).strip().splitlines()[0][:200]
            raise OutputError(f"cannot write to {self.root}: {message}") from None
        if state == "incomplete":
            notes.append(f"{self.root} held an incomplete run (no {SUMMARY}); it is completed or replaced now")
        return notes

    def publish(self, replace: list, append: list, summary: dict, clear: bool = False) -> None:
        """Move staged results into place: ``replace`` ones whole, ``append`` ones as a run partition.

        ``clear`` first removes every earlier result (a full run replaces the folder's content).
        """
        self.fs.delete(self.path(SUMMARY))
        for name in RESULTS if clear else ():
            self.fs.delete(self.path(name))
        for name in append:
            self.fs.rename(self.stage(name), self.partition(name))
        for name in replace:
            self.fs.delete(self.path(name))
            self.fs.rename(self.stage(name), self.path(name))
        self.fs.write_json(self.path(SUMMARY), summary)
        self.fs.delete(self.staging)
        if not self.fs.list(join(self.root, STAGING)):
            self.fs.delete(join(self.root, STAGING))

    def discard(self) -> None:
        """Remove this run's staging area (after a failure)."""
        self.fs.delete(self.staging)
