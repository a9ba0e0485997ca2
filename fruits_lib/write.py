"""Write results wherever Spark can (local, ``hdfs://``, ``s3://``): parquet, and files through Hadoop.

Files go through Hadoop's FileSystem (the JVM's), so a PNG or ``summary.json`` lands on S3
exactly like the parquet does. How a run's results are staged and published: :mod:`fruits_lib.support.store`.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

from fruits_lib.support.errors import OutputError

LARGE_PAYLOAD = 1 << 20  # bytes above which FileSystem moves file contents through a local file, not py4j


@contextmanager
def _local_copy():
    """A private local file name for one transfer; its folder is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fruits-transfer-") as folder:
        yield os.path.join(folder, "payload")


def write_parquet(frame: DataFrame, path: str) -> None:
    """``frame`` as parquet, its float arrays without dictionary encoding.

    1,280 distinct floats per row defeat a dictionary; parquet-mr builds one anyway, then falls
    back to plain encoding, which costs the JVM part of the write (docs/performance.md).
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
        copies: through py4j it would travel as a base64 string, slowly.
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
