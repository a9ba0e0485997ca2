"""fruits_lib.session: the local driver JVM starts with this machine's class archive (AppCDS)."""

import os

import pytest
from conftest import in_ci

from fruits_lib.session import _ARCHIVE_QUIET, _with_java_options, class_archive_path


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
