"""One way to get a SparkSession, tuned for featurization, locally or under spark-submit.

Locally we own the configuration: workers run this interpreter (``PYSPARK_PYTHON``), Arrow
is on, Python workers are reused (the model is cached per worker) and TensorFlow is quiet.
Under ``spark-submit`` (EMR), the cluster's configuration is kept as it is.
"""

from __future__ import annotations

import os
import re
import sys

from pyspark.sql import SparkSession

from fruits_lib.support import logs

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
    # C1 JIT only: the driver JVM's work here is light and short, and C2 compiler threads would
    # compete with the Python workers for the cores (docs/performance.md).
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    "spark.sql.shuffle.partitions": "8",
    # Local folders are listed by the driver: Spark's default lists more than 32 folders (33 labels of
    # Fruits-360) with a job of one task per folder, which costs a fresh session seconds for nothing here.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000000",
    "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
}


# A local driver JVM is also the executor: per concurrent task it holds a few Arrow batches of 64
# photos and the rows waiting for their features (sizing measured in docs/performance.md).
DRIVER_MEMORY_PER_TASK_MB = 512
DRIVER_MEMORY_MIN_MB = 1024  # Spark's own default for spark.driver.memory


def local_driver_memory(master: str) -> str:
    """``spark.driver.memory`` for a driver we start: 512 MB per task slot it runs, 1g at least.

    ``local[N]`` runs N tasks in the driver (``local[*]``: one per core); ``local-cluster`` and
    remote masters run them elsewhere, so their driver gets the minimum.
    """
    found = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if not found or found.group(1) is None:
        slots = 1
    elif found.group(1) == "*":
        slots = os.cpu_count() or 1
    else:
        slots = int(found.group(1))
    return f"{max(DRIVER_MEMORY_MIN_MB, DRIVER_MEMORY_PER_TASK_MB * slots)}m"


def _fixed_heap(memory: str) -> str:
    """``-Xms`` equal to ``spark.driver.memory`` (Spark sets ``-Xmx`` from it): a heap of fixed size.

    Otherwise G1 grows the heap with the run's length (GC pauses, humongous summaries), not with
    what it keeps (docs/performance.md).
    """
    found = re.fullmatch(r"(\d+)\s*([kmgt]?)b?", memory.strip().lower())
    if not found:
        raise ValueError(f"spark.driver.memory must look like 1g or 1024m, not {memory!r}")
    return f"-Xms{found.group(1)}{found.group(2) or 'm'}"  # Spark reads a bare number as MiB


def under_spark_submit() -> bool:
    """True when spark-submit (or a notebook kernel with a gateway) started this Python."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_settings(master: str, conf: dict | None = None) -> dict:
    """The settings of a driver this process starts on ``master``: :data:`LOCAL_DEFAULTS`, then ``conf``,
    then a heap of fixed size (``-Xms`` appended to ``spark.driver.extraJavaOptions``) sized by its task slots."""
    settings = {**LOCAL_DEFAULTS, **(conf or {})}
    memory = settings.get("spark.driver.memory") or local_driver_memory(master)
    # the log level is the JVM's from its first line, start-up included (logs.py beside this module);
    # verbose: every line from the JVM's start on (Spark's defaults stop at WARN after start-up)
    extra = [settings.get("spark.driver.extraJavaOptions", ""), _fixed_heap(memory), logs.driver_java_options()]
    options = " ".join(option for option in extra if option)
    verbose = {"spark.log.level": "INFO"} if logs.verbose() else {}
    return {**settings, "spark.driver.memory": memory, "spark.driver.extraJavaOptions": options, **verbose}


def get_spark(master: str | None = None, app_name: str = "fruits", conf: dict | None = None) -> SparkSession:
    """The active SparkSession, or a new one on ``master`` (default ``local[*]`` outside spark-submit).

    Outside spark-submit the session gets :func:`local_settings` (``conf`` on top of ours); under
    spark-submit the cluster's configuration is kept, with ``conf`` applied.
    """
    active = SparkSession.getActiveSession()
    if active is not None and master in (None, active.sparkContext.master):
        return active
    logs.quiet_tensorflow()
    builder = SparkSession.builder.appName(app_name)
    settings = dict(conf or {})
    if master or not under_spark_submit():
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.master(master or "local[*]")
        if (master or "local").startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings = local_settings(master or "local[*]", conf)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if under_spark_submit() and not master and not logs.verbose():
        spark.sparkContext.setLogLevel("ERROR")  # the cluster's JVM, already started with its own log4j2 file
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
