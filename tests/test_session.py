"""fruits_lib.support.session: the local driver's settings (heap sized by its task slots), conf on top."""

import os

import pytest

from fruits_lib.support.session import LOCAL_DEFAULTS, _fixed_heap, local_driver_memory, local_settings


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


def test_conf_goes_on_top_of_our_settings_and_the_heap_stays_fixed():
    settings = local_settings("local[2]", {"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "2g"})
    assert settings["spark.sql.shuffle.partitions"] == "2" and settings["spark.driver.memory"] == "2g"
    assert settings["spark.driver.extraJavaOptions"].startswith(f"{LOCAL_DEFAULTS['spark.driver.extraJavaOptions']} -Xms2g")
    replaced = local_settings("local[2]", {"spark.driver.extraJavaOptions": ""})["spark.driver.extraJavaOptions"]
    assert replaced.startswith("-Xms1024m") and "TieredStopAtLevel" not in replaced
