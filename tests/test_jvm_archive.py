"""devtools.jvm_archive: the driver JVM's class archive, keyed by Java and jars, given through SPARK_SUBMIT_OPTS."""

import os

import pytest
from helpers import in_ci

from devtools.jvm_archive import QUIET, archive_path, options, prune


def test_the_session_driver_jvm_maps_the_class_archive_given_in_spark_submit_opts(spark):
    """``make setup`` made the archive and ``make test`` passes ``options()`` in SPARK_SUBMIT_OPTS: the tests'
    driver JVM must really map it. A JVM that ignores its archive (another Java build, other jars, a wrong
    flag) runs fine but slower; /proc/<pid>/maps is where that shows.
    """
    archive = archive_path()
    if not archive.exists() or str(archive) not in os.environ.get("SPARK_SUBMIT_OPTS", ""):
        message = (f"no class archive at {archive} in SPARK_SUBMIT_OPTS: run `python -m devtools.jvm_archive`, "
                   "then SPARK_SUBMIT_OPTS=\"$(python -m devtools.jvm_archive --options)\" (make test does)")
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    jvm = spark.sparkContext._jvm
    pid = jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getPid()  # public Java API
    with open(f"/proc/{pid}/maps") as maps:
        assert str(archive) in maps.read(), f"driver JVM {pid} did not map {archive}"


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
