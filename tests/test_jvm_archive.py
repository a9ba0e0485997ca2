"""devtools.jvm_archive: the driver JVM's class archive, keyed by Java and jars, given through SPARK_SUBMIT_OPTS."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.jvm_archive import QUIET, archive_path, make, options, prune

# A bare driver JVM: a local session started and stopped, printing the files its JVM maps (public Java API for the pid).
SESSION = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
pid = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getPid()
print(open(f"/proc/{pid}/maps").read())
spark.stop()
"""


@pytest.mark.slow  # two JVMs start: the dump, then a session with the options
def test_a_driver_jvm_given_the_options_maps_the_archive_the_tool_made(tmp_path, monkeypatch):
    """What ``make jvm-archive`` then ``SPARK_SUBMIT_OPTS="$(... --options)"`` do, on a bare session: the archive is
    made, and a driver JVM started with the options really maps it (a JVM that ignores its archive, e.g. another
    Java build, other jars or a wrong flag, runs fine but slower; /proc/<pid>/maps is where that shows)."""
    import pyspark

    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    # the dump: the quickest JVM on the driver's class path (Spark's launcher builds the same for both)
    archive = make(command=[str(Path(pyspark.__file__).parent / "bin" / "spark-submit"), "--version"], log=print)
    assert archive is not None and archive.exists() and archive.stat().st_size > 0
    assert not list(archive.parent.glob("*.partial"))

    session = subprocess.run([sys.executable, "-c", SESSION], env=dict(os.environ, SPARK_SUBMIT_OPTS=options()),
                             capture_output=True, text=True, timeout=300)
    assert session.returncode == 0, session.stderr[-2000:]
    assert str(archive) in session.stdout, "the session's driver JVM did not map the archive"


def test_the_options_map_the_archive_quietly_or_are_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    assert options() == ""  # no archive made in this cache: the JVM starts without one
    archive_path().parent.mkdir(parents=True)
    archive_path().write_bytes(b"archive")
    assert options() == f"-XX:SharedArchiveFile={archive_path()} {QUIET}"


def test_the_archive_is_keyed_by_java_and_pyspark(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    path = archive_path()
    assert path.parent == tmp_path / "jvm" and path.name.startswith("spark-3.5") and path.suffix == ".jsa"
    fake = tmp_path / "jdk" / "bin"
    fake.mkdir(parents=True)
    (fake / "java").write_text("")
    os.utime(fake / "java", (1, 1))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert archive_path() != path  # another Java: another archive, never a mismatched one


def test_a_rebuilt_jar_changes_the_archive(tmp_path, monkeypatch):
    """A venv re-created at the same path has the same jar names but new files: the JVM would silently
    ignore the old archive (its class path check fails), so the key must change with the jars' stat."""
    import pyspark

    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    (tmp_path / "pyspark" / "jars").mkdir(parents=True)
    jar = tmp_path / "pyspark" / "jars" / "spark-core.jar"
    jar.write_bytes(b"jar")
    os.utime(jar, (1, 1))
    monkeypatch.setattr(pyspark, "__file__", str(tmp_path / "pyspark" / "__init__.py"))
    before = archive_path()
    os.utime(jar, (2, 2))  # same name and size, rebuilt
    assert archive_path() != before


def test_only_the_newest_class_archives_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "jvm"
    folder.mkdir()
    for age in range(5):  # spark-0 is the newest
        path = folder / f"spark-{age}.jsa"
        path.write_bytes(b"archive")
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
    (folder / "spark-9.jsa.123.partial").write_bytes(b"being written")
    deleted = prune(keep=3)
    assert sorted(p.name for p in deleted) == ["spark-3.jsa", "spark-4.jsa"]
    assert sorted(p.name for p in folder.iterdir()) == ["spark-0.jsa", "spark-1.jsa", "spark-2.jsa",
                                                       "spark-9.jsa.123.partial"]  # another process's dump
