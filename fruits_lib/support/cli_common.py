"""What the command line's modules share: argument types, the terminal options, and starting Spark."""

from __future__ import annotations

import argparse
import importlib
import sys


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return number


def _share(value: str) -> float:
    number = float(value)
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {value}")
    return number


def _add_terminal_options(command: argparse.ArgumentParser) -> None:
    """Options of the commands that start Spark: what the terminal shows."""
    shown = command.add_argument_group("terminal output")
    shown.add_argument("-v", "--verbose", action="store_true",
                       help="show every log line: Spark's, Hadoop's, TensorFlow's and LiteRT's, INFO included "
                            "(same as FRUITS_LOG=debug)")
    shown.add_argument("--spark-ui", action="store_true", help="start Spark's web UI and print its address once")


def _spark_beside(modules, master=None, ui: bool = False, conf: dict | None = None):
    """The SparkSession, its JVM started while ``modules`` import in a thread (both take seconds).

    Side by side the two take about the longer of them instead of their sum. A module that fails to
    import here fails again, with its real error, at the caller's own import. ``ui``: start Spark's
    web UI (off by default for local runs) and print its address once. ``conf``: settings for a new session.
    """
    import concurrent.futures.thread  # noqa: F401 - see below
    import threading

    from fruits_lib.support.session import get_spark

    # The JVM is forked from this thread while the others import. A module that registers fork handlers
    # (concurrent.futures.thread: acquire before, release after) must not be first imported during that
    # fork: registered in between, its handler released a lock never taken and Python printed
    # "Exception ignored ... RuntimeError: release unlocked lock" (seen once in ~10 runs). It is imported here first.

    def load(name):
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - reported by the caller's import
            pass

    threads = [threading.Thread(target=load, args=(name,), daemon=True) for name in modules]
    for thread in threads:
        thread.start()
    spark = get_spark(master, conf={**(conf or {}), **({"spark.ui.enabled": "true"} if ui else {})} or None)
    if ui:
        address = spark.sparkContext.uiWebUrl
        print(f"Spark UI: {address}" if address else "Spark UI: off in this Spark session (spark.ui.enabled)",
              file=sys.stderr, flush=True)
    for thread in threads:
        thread.join()
    return spark
