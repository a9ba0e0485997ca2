"""One way to get a SparkSession, tuned for featurization, locally or under spark-submit.

Locally we own the configuration: workers run this interpreter (``PYSPARK_PYTHON``), Arrow
is on, Python workers are reused (the model is cached per worker) and TensorFlow is quiet.
Under ``spark-submit`` (EMR), the cluster's configuration is kept as it is.

A local driver JVM loads ~11,000 classes from ~250 jars, lazily, during its first jobs. With
a class archive (Java's AppCDS, made once per machine by :func:`prepare_class_archive`, e.g. by
``fruits fetch-weights``) they come parsed and verified from one mapped file instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from fruits_lib import logs
from fruits_lib.store import cache_dir

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
    # compete with the Python workers for the cores (5.8 s off a 33 s run, docs/performance.md).
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    "spark.sql.shuffle.partitions": "8",
    # Python workers import pyspark from the installed package, not from Spark's zip of the same
    # files: no recompiling per worker, no zip re-read per task (fruits_lib.spark_daemon).
    "spark.python.daemon.module": "fruits_lib.spark_daemon",
    "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
}


# A local driver JVM is also the executor: per concurrent task it holds a few Arrow batches of 64
# photos and the rows waiting for their features. Phone photos (160 of 5.5 MB, local[2]) ran in a
# 1g heap, at 6 % more time than in 4g; 100x100 Fruits-360 photos keep ~0.4 GB live at most.
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
    what it keeps: the same chain peaked at 1.2 GiB on 5k images and 1.8 GiB on 50k under a 4g cap.
    """
    found = re.fullmatch(r"(\d+)\s*([kmgt]?)b?", memory.strip().lower())
    if not found:
        raise ValueError(f"spark.driver.memory must look like 1g or 1024m, not {memory!r}")
    return f"-Xms{found.group(1)}{found.group(2) or 'm'}"  # Spark reads a bare number as MiB


def under_spark_submit() -> bool:
    """True when spark-submit (or a notebook kernel with a gateway) started this Python."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


# Quiet: a missing or outdated archive is simply not used (the JVM loads classes from the jars).
_ARCHIVE_QUIET = "-Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> Path | None:
    """The ``java`` spark-submit starts: ``$JAVA_HOME/bin/java``, else the one on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def class_archive_path() -> Path | None:
    """This machine's archive for the driver JVM: one per Java build and PySpark install (its jars)."""
    java = _java()
    if java is None:
        return None
    jars = Path(pyspark.__file__).parent / "jars"
    # The JVM ignores an archive whose class path changed, size or modification time of any jar
    # included (a re-created venv at the same path): each jar's stat is in the name, so a stale
    # archive is never picked up in place of a new one.
    listing = sorted((jar.name, stat.st_size, stat.st_mtime_ns)
                     for jar, stat in ((jar, jar.stat()) for jar in jars.iterdir())) if jars.is_dir() else []
    stamp = f"{java}:{java.stat().st_mtime_ns}:{jars}:{pyspark.__version__}:{listing}"
    return cache_dir() / "jvm" / f"spark-{pyspark.__version__}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.jsa"


def _with_java_options(settings: dict, options: str) -> dict:
    merged = dict(settings)
    merged["spark.driver.extraJavaOptions"] = f"{settings.get('spark.driver.extraJavaOptions', '')} {options}".strip()
    return merged


def get_spark(master: str | None = None, app_name: str = "fruits", conf: dict | None = None,
              local_defaults: dict | None = None, class_archive: bool = True) -> SparkSession:
    """The active SparkSession, or a new one on ``master`` (default ``local[*]`` outside spark-submit).

    ``local_defaults`` replaces :data:`LOCAL_DEFAULTS` (the settings we own outside spark-submit),
    e.g. to measure what one of them brings; ``conf`` is applied on top in every case.
    ``class_archive``: start a local driver JVM with this machine's class archive, when one exists.
    """
    active = SparkSession.getActiveSession()
    if active is not None and master in (None, active.sparkContext.master):
        return active
    logs.quiet_tensorflow()
    builder = SparkSession.builder.appName(app_name)
    if master or not under_spark_submit():
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.master(master or "local[*]")
        if (master or "local").startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings = LOCAL_DEFAULTS if local_defaults is None else local_defaults
        memory = (conf or {}).get("spark.driver.memory") or settings.get("spark.driver.memory") \
            or local_driver_memory(master or "local[*]")
        settings = _with_java_options({**settings, "spark.driver.memory": memory}, _fixed_heap(memory))
        archive = class_archive_path() if class_archive else None
        if archive is not None and archive.exists():
            settings = _with_java_options(settings, f"-XX:SharedArchiveFile={archive} {_ARCHIVE_QUIET}")
        if logs.verbose():  # every line from the JVM's start on (Spark's defaults stop at WARN after start-up)
            settings = {**settings, "spark.log.level": "INFO"}
        else:  # the log level is the JVM's from its first line, start-up included
            settings = _with_java_options(settings, logs.driver_java_options())
        for key, value in settings.items():
            builder = builder.config(key, value)
    for key, value in (conf or {}).items():
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


def prepare_class_archive(weights: str = "offline", log=print) -> Path | None:
    """Make this machine's class archive once (~30 s): a tiny run of the chain in a child process.

    The child's driver JVM writes the classes it loaded at exit (``-XX:ArchiveClassesAtExit``) to a
    private name, renamed into place only once the JVM is gone: a half-written archive is never used.
    """
    archive = class_archive_path()
    if archive is None or archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    env = dict(os.environ, PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable))
    done = subprocess.run([sys.executable, "-m", "fruits_lib.session", str(partial), weights], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 or not partial.exists() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        log(f"note: no JVM class archive ({done.stderr.strip().splitlines()[-1:] or 'no archive written'}); "
            "runs start the JVM without it")
        return None
    os.replace(partial, archive)
    prune_class_archives(keep=CLASS_ARCHIVES_KEPT)
    return archive


# Each new venv (a fresh clone, a re-created .venv) has new jars, so a new archive (~150 MB): without a
# limit they piled up (19 archives, 2.8 GB, in two days of clean clones on one machine).
CLASS_ARCHIVES_KEPT = 3


def prune_class_archives(keep: int = CLASS_ARCHIVES_KEPT) -> list:
    """Delete all but the ``keep`` newest archives of the cache; returns the deleted paths.

    An older archive belongs to a venv that was re-created or to another checkout: the JVM maps it read-only,
    so one still in use keeps working (Linux frees it at exit), and a checkout that needs it again makes a
    new one at its next ``fetch-weights``.
    """
    def newest_first(path: Path) -> int:
        try:
            return -path.stat().st_mtime_ns
        except FileNotFoundError:  # pruned meanwhile by another process
            return 0

    deleted = sorted((cache_dir() / "jvm").glob("spark-*.jsa"), key=newest_first)[keep:]
    for path in deleted:
        path.unlink(missing_ok=True)
    return deleted


def _dump_class_archive(target: str, weights: str) -> None:
    """Child of :func:`prepare_class_archive`: the chain on 4 synthetic images, then the JVM's exit."""
    import tempfile

    from fruits_lib.pipeline import run
    from fruits_lib.sample import make_sample

    with tempfile.TemporaryDirectory(prefix="fruits-class-archive-") as folder:
        make_sample(os.path.join(folder, "in"), per_class=2, classes=["apple", "lemon"])
        dumping = _with_java_options(LOCAL_DEFAULTS, f"-XX:ArchiveClassesAtExit={target} {_ARCHIVE_QUIET}")
        spark = get_spark("local[2]", app_name="fruits-class-archive", class_archive=False, local_defaults=dumping)
        run(os.path.join(folder, "in"), os.path.join(folder, "out"), weights=weights, pca_k=2, spark=spark,
            log=lambda message: None)
        jvm = spark.sparkContext._gateway.proc  # the driver JVM, started by PySpark with a stdin pipe
        spark.stop()
        jvm.stdin.close()  # PySpark's gateway exits on end of input: the archive is written at exit
        jvm.wait(timeout=300)


if __name__ == "__main__":
    _dump_class_archive(sys.argv[1], sys.argv[2])
