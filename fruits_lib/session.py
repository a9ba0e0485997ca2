"""One way to get a SparkSession, tuned for featurization, locally or under spark-submit.

Locally we own the configuration: workers run this interpreter (``PYSPARK_PYTHON``), Arrow
is on, Python workers are reused (the model is cached per worker) and TensorFlow is quiet.
Under ``spark-submit`` (EMR), the cluster's configuration is kept as it is.
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

LOCAL_DEFAULTS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Image batches of 64 rows stream to the Python workers (the default, 10,000, sends a whole
    # partition at once): reading, Arrow and the parquet writer overlap with inference, and a
    # worker's memory does not grow with the partition (phone photos weigh MBs).
    "spark.sql.execution.arrow.maxRecordsPerBatch": "64",
    "spark.python.worker.reuse": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "4g",
    # C1 JIT only: the driver JVM's work here is light and short, and C2 compiler threads would
    # compete with the Python workers for the cores (5.8 s off a 33 s run, docs/performance.md).
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    "spark.sql.shuffle.partitions": "8",
    "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
}


def under_spark_submit() -> bool:
    """True when spark-submit (or a notebook kernel with a gateway) started this Python."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(master: str | None = None, app_name: str = "fruits", conf: dict | None = None,
              local_defaults: dict | None = None) -> SparkSession:
    """The active SparkSession, or a new one on ``master`` (default ``local[*]`` outside spark-submit).

    ``local_defaults`` replaces :data:`LOCAL_DEFAULTS` (the settings we own outside spark-submit),
    e.g. to measure what one of them brings; ``conf`` is applied on top in every case.
    """
    active = SparkSession.getActiveSession()
    if active is not None and master in (None, active.sparkContext.master):
        return active
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    builder = SparkSession.builder.appName(app_name)
    if master or not under_spark_submit():
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.master(master or "local[*]")
        if (master or "local").startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        for key, value in (LOCAL_DEFAULTS if local_defaults is None else local_defaults).items():
            builder = builder.config(key, value)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def cluster_info(spark: SparkSession) -> dict:
    """What the job runs on: master, default parallelism, executors and a few key settings."""
    sc = spark.sparkContext
    executors = sc._jsc.sc().getExecutorMemoryStatus().size()  # includes the driver
    keys = ("spark.executor.memory", "spark.executor.cores", "spark.task.cpus",
            "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.python.worker.reuse",
            "spark.pyspark.python")
    settings = {key: spark.conf.get(key, None) for key in keys}
    return {
        "master": sc.master,
        "spark_version": spark.version,
        "default_parallelism": sc.defaultParallelism,
        "executors": max(executors - 1, 1) if not sc.master.startswith("local[") else 1,
        "settings": {k: v for k, v in settings.items() if v is not None},
    }
