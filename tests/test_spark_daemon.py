"""fruits_lib.spark_daemon: local Python workers import pyspark from the installed package, not Spark's zip."""

from fruits_lib.spark_daemon import redundant_zips


def _package(root, name):
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")


def test_only_zips_of_the_importable_pyspark_are_redundant(tmp_path):
    site = tmp_path / "site-packages"
    _package(site, "pyspark")
    _package(site, "py4j")
    lib = site / "pyspark" / "python" / "lib"
    lib.mkdir(parents=True)
    own = [str(lib / "pyspark.zip"), str(lib / "py4j-0.10.9.7-src.zip")]
    for zipped in own:
        open(zipped, "wb").close()
    other = str(tmp_path / "usr" / "lib" / "spark" / "python" / "lib" / "pyspark.zip")  # EMR's Spark
    assert redundant_zips(own + [other, str(site)]) == own
    assert redundant_zips([other, str(site)]) == []
    assert redundant_zips(own) == []  # no pyspark outside the zips: nothing is redundant

    (site / "py4j" / "__init__.py").unlink()
    (site / "py4j").rmdir()
    assert redundant_zips(own + [str(site)]) == own[:1]  # py4j only in its zip: that zip stays


def test_workers_run_this_daemon_and_import_the_installed_pyspark(spark):
    """The session's Python workers: forked by this daemon (``spark.python.daemon.module``) and free of the zip.

    Guards the Spark setting this relies on: a Spark that ignored or renamed it would start
    ``pyspark.daemon`` from the zip again, and this test would say so.
    """

    def where(_):  # defined here: cloudpickle ships it by value (the workers cannot import tests/)
        import os
        import sys

        import pyspark

        with open(f"/proc/{os.getppid()}/cmdline", "rb") as cmdline:
            daemon = cmdline.read().decode().split("\0")
        return [(pyspark.__file__, [entry for entry in sys.path if "pyspark" in entry and entry.endswith(".zip")],
                 daemon[daemon.index("-m") + 1] if "-m" in daemon else daemon)]

    import pyspark

    for module_file, zips, daemon in spark.sparkContext.parallelize(range(2), 2).mapPartitions(where).collect():
        assert daemon == "fruits_lib.spark_daemon"
        assert module_file == pyspark.__file__ and zips == []
