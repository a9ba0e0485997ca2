"""Load images with Spark's ``binaryFile`` source; the label is the parent folder's name.

Works alike on local paths, ``hdfs://`` and ``s3://`` (Fruits-360 layout:
``<root>/.../<label>/<file>.jpg``). Extensions ``jpg``, ``jpeg`` and ``png`` match in
any case. Like every Spark file source, names starting with ``_`` or ``.`` are hidden.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fruits_lib.support.errors import InputError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
# Hadoop globs are case-sensitive: spell every case out so .JPG and .Jpeg match too.
IMAGE_GLOB = "*.{" + ",".join("".join(f"[{c.lower()}{c.upper()}]" for c in ext) for ext in IMAGE_EXTENSIONS) + "}"
IMAGE_REGEX = r"(?i)\.(" + "|".join(IMAGE_EXTENSIONS) + r")$"
REMOTE_SCHEMES = ("s3", "s3a", "s3n", "hdfs", "gs", "abfs", "abfss", "wasb", "wasbs", "viewfs")


def normalize_path(path: str) -> str:
    """A validated path or URI: local paths become absolute; unknown schemes and secrets are refused."""
    if not isinstance(path, str) or not path.strip():
        raise InputError("empty path")
    path = path.strip()
    parts = urlsplit(path)
    if len(parts.scheme) <= 1:  # no scheme (or a Windows drive letter): a local path
        return os.path.abspath(os.path.expanduser(path))
    if parts.scheme == "file":
        return path
    if parts.scheme not in REMOTE_SCHEMES:
        raise InputError(f"unsupported scheme {parts.scheme}:// in {path!r} (use a local path, "
                         f"{', '.join(s + '://' for s in REMOTE_SCHEMES[:4])}...)")
    if "@" in parts.netloc:
        raise InputError(f"credentials in {parts.scheme}:// URIs are refused; the path names "
                         "only the bucket/host, credentials come from the environment or an IAM role")
    if not parts.netloc:
        raise InputError(f"{path!r} names no bucket or host")
    return path


def label_from_path(path: str) -> str:
    """The parent folder's name, URI-decoded (``.../Red%20Apple/1.jpg`` -> ``Red Apple``)."""
    parts = path.rstrip("/").split("/")
    return unquote(parts[-2]) if len(parts) >= 2 else ""


def label_column(path_col: str = "path"):
    """:func:`label_from_path` as a JVM expression, so no Python worker is spent on labels."""
    raw = F.regexp_extract(F.col(path_col), r"([^/]+)/[^/]+$", 1)
    decoded = F.call_function("reflect", F.lit("java.net.URLDecoder"), F.lit("decode"),
                              F.regexp_replace(raw, r"\+", "%2B"), F.lit("UTF-8"))
    return F.coalesce(decoded, raw)  # reflect gives null on a malformed escape: keep the raw name


def _binary_files(spark: SparkSession, path: str, glob: str | None) -> DataFrame:
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
    if glob:
        reader = reader.option("pathGlobFilter", glob)
    return reader.load(path)


def input_files(frame: DataFrame) -> list:
    """``frame.inputFiles()`` (the file index's listing, URI-encoded) fetched from the JVM in one call.

    PySpark's own turns the JVM's array into a list one element at a time, two py4j round trips each
    (``py4j.java_collections.JavaArray``): seconds for 20,000 files (docs/performance.md). Hadoop's
    ``StringUtils.join(CharSequence, String[])`` joins it in the JVM (py4j matches no ``Object[]`` or varargs
    method to a ``String[]``); URI-encoding turns a newline in a name into ``%0A``, so the split is exact.
    """
    files = frame._jdf.inputFiles()  # private: PySpark has no public call that returns the array whole
    joined = frame.sparkSession.sparkContext._jvm.org.apache.hadoop.util.StringUtils.join("\n", files)
    return joined.split("\n") if joined else []


def list_files(spark: SparkSession, path: str) -> DataFrame:
    """Every file under ``path`` (metadata only, contents not read), flagged ``is_image``.

    Spark's file sources silently skip zero-byte files; they are found here and listed too,
    so that an empty ``.jpg`` ends in ``errors/`` instead of vanishing.
    """
    reader = _binary_files(spark, path, None)
    files = reader.select("path", "length", "modificationTime")
    every_uri = input_files(reader)  # the file index's full listing, zero-byte files included
    if len(every_uri) != files.count():
        seen = {canonical(row["path"]) for row in files.select("path").collect()}
        empty = [file_status(spark, uri) for uri in every_uri if canonical(uri) not in seen]
        files = files.unionByName(spark.createDataFrame(empty, files.schema))
    return files.withColumn("is_image", F.col("path").rlike(IMAGE_REGEX))


def count_listed(files: DataFrame) -> tuple:
    """``(images, other files)`` in a :func:`list_files` frame, in one Spark job."""
    counts = {row["is_image"]: row["count"] for row in files.groupBy("is_image").count().collect()}
    return counts.get(True, 0), counts.get(False, 0)


def image_uris(spark: SparkSession, path: str) -> list:
    """Every image file under ``path`` as listed by Spark's file index (zero-byte ones included)."""
    return input_files(_binary_files(spark, path, IMAGE_GLOB))


def canonical(uri: str) -> str:
    """One spelling per file: Spark's ``path`` column is decoded, ``inputFiles()`` is URI-encoded."""
    return unquote(uri).replace(":///", ":/")


def local_path(path: str) -> str:
    """A local file as a plain path (Spark's ``path`` column spells it ``file:/...``); other URIs as they are.
    For ``inputFiles()``, URI-encoded, pass :func:`canonical` of it."""
    return path[len("file:"):] if path.startswith("file:/") else path


def file_status(spark: SparkSession, uri: str) -> tuple:
    """``(path, length, modificationTime)`` of one file, spelled as Spark's ``path`` column."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(canonical(uri))
    status = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).getFileStatus(path)
    modified = datetime.fromtimestamp(status.getModificationTime() / 1000, tz=timezone.utc)
    return status.getPath().toString(), int(status.getLen()), modified


def count_files(spark: SparkSession, path: str) -> tuple:
    """``(images, other files)`` under ``path``, from one listing by Spark's file index (no Spark job).

    The same options as :func:`list_files` and :func:`read_images`, so the same files are counted
    (zero-byte ones included); no job runs, so a fresh session skips a first job's warm-up.
    """
    every = input_files(_binary_files(spark, path, None))
    images = sum(1 for uri in every if is_image_path(uri))
    return images, len(every) - images


def read_images(spark: SparkSession, path: str | None = None, paths: list | None = None) -> DataFrame:
    """Images under ``path`` (or exactly ``paths``) as ``path, label, length, modificationTime, content``."""
    if paths is not None:
        if not paths:
            raise InputError("no image paths given")
        frame = spark.read.format("binaryFile").load(paths)
    else:
        frame = _binary_files(spark, path, IMAGE_GLOB)
    frame = frame.withColumn("label", label_column())
    return frame.select("path", "label", "length", "modificationTime", "content")


def label_counts(images: DataFrame) -> dict:
    """Number of images per label, as a plain dict sorted by label."""
    rows = images.groupBy("label").count().collect()
    return {row["label"]: row["count"] for row in sorted(rows, key=lambda r: r["label"])}


def is_image_path(path: str) -> bool:
    """Whether ``path`` has one of the image extensions, in any case."""
    return re.search(IMAGE_REGEX, path) is not None
