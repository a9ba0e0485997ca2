"""fruits_lib.session: the local driver JVM starts with this machine's class archive (AppCDS)."""

import os

import pytest
from conftest import in_ci

from fruits_lib.session import (
    _ARCHIVE_QUIET,
    _fixed_heap,
    _with_java_options,
    class_archive_path,
    local_driver_memory,
    prune_class_archives,
)


def test_the_session_driver_jvm_maps_the_class_archive(spark):
    """``make setup`` (``fruits fetch-weights``) made the archive; the tests' driver JVM must really map it.

    A JVM that ignores its archive (another Java build, other jars, a wrong flag) runs fine but slower;
    /proc/<pid>/maps is where that shows.
    """
    archive = class_archive_path()
    if not archive.exists():
        message = f"no class archive at {archive}: run `python -m fruits_lib fetch-weights --weights offline`"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    jvm = spark.sparkContext._jvm
    pid = jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getPid()  # public Java API
    with open(f"/proc/{pid}/maps") as maps:
        assert str(archive) in maps.read(), f"driver JVM {pid} did not map {archive}"


def test_java_options_are_appended_not_replaced():
    merged = _with_java_options({"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1", "k": "v"},
                                f"-XX:SharedArchiveFile=/a.jsa {_ARCHIVE_QUIET}")
    assert merged["spark.driver.extraJavaOptions"].startswith("-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile=/a.jsa")
    assert merged["k"] == "v" and _with_java_options({}, "-Xa")["spark.driver.extraJavaOptions"] == "-Xa"


def test_the_archive_is_keyed_by_java_and_pyspark(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    path = class_archive_path()
    assert path.parent == tmp_path / "jvm" and path.name.startswith("spark-3.5") and path.suffix == ".jsa"
    fake = tmp_path / "jdk" / "bin"
    fake.mkdir(parents=True)
    (fake / "java").write_text("")
    os.utime(fake / "java", (1, 1))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert class_archive_path() != path  # another Java: another archive, never a mismatched one


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
    before = class_archive_path()
    os.utime(jar, (2, 2))  # same name and size, rebuilt
    assert class_archive_path() != before


def test_the_local_driver_heap_is_fixed(spark):
    """-Xms = -Xmx: a driver JVM's footprint must not depend on how long the run is (issue 10's flat
    driver RSS); without -Xms, G1 grew the heap further in a 50k-image run than in a 5k one."""
    jvm = spark.sparkContext._jvm
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    heap = {a[:4]: a[4:] for a in arguments if a.startswith(("-Xms", "-Xmx"))}
    assert heap.get("-Xms") and heap.get("-Xms") == heap.get("-Xmx"), arguments


def test_the_driver_heap_follows_the_task_slots(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert local_driver_memory("local") == "1024m"  # Spark's own default is the floor
    assert local_driver_memory("local[2]") == "1024m"
    assert local_driver_memory("local[8]") == local_driver_memory("local[8, 3]") == "4096m"
    assert local_driver_memory("local[*]") == "3072m"  # one task slot per core
    assert local_driver_memory("local-cluster[2,1,1024]") == "1024m"  # its tasks run in executor JVMs
    assert [_fixed_heap(m) for m in ("4g", "1024m", "2GB", "512")] == ["-Xms4g", "-Xms1024m", "-Xms2g", "-Xms512m"]
    with pytest.raises(ValueError, match="spark.driver.memory"):
        _fixed_heap("lots")


def test_only_the_newest_class_archives_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "jvm"
    folder.mkdir()
    for age in range(5):  # spark-0 is the newest
        path = folder / f"spark-{age}.jsa"
        path.write_bytes(b"archive")
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
    (folder / "spark-9.jsa.123.partial").write_bytes(b"being written")
    deleted = prune_class_archives(keep=3)
    assert sorted(p.name for p in deleted) == ["spark-3.jsa", "spark-4.jsa"]
    assert sorted(p.name for p in folder.iterdir()) == ["spark-0.jsa", "spark-1.jsa", "spark-2.jsa",
                                                       "spark-9.jsa.123.partial"]  # another process's dump
