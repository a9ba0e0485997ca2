"""Spark's own Python daemon, started without the copy of pyspark that Spark zips onto the workers' path.

Spark puts ``$SPARK_HOME/python/lib/pyspark.zip`` (and py4j's zip) first on its Python workers'
``sys.path``. Python compiles modules imported from a zip again in every process (no ``.pyc``
cache: ~1.3 s per worker for pyspark's SQL modules) and, from Python 3.10 on, re-reads the zip's
directory at every task (``pyspark.worker`` calls ``importlib.invalidate_caches()``: ~0.1 s a task).
With pip's pyspark (local runs) the zip holds the very files of the installed package, so this
daemon drops it from ``sys.path`` and runs Spark's daemon from the installed, compiled files.
A zip of another Spark install (EMR's ``/usr/lib/spark``) always stays.

``session.get_spark`` starts local Spark with ``spark.python.daemon.module`` set to this module:
the setting Spark provides for custom daemons (SPARK-22959). No pyspark import may run before
the path is cleaned, so this module imports nothing from pyspark at its top.
"""

import os
import sys
from importlib.machinery import PathFinder


def redundant_zips(path: list) -> list:
    """The entries of ``path`` that are zips shipped inside the pyspark package importable without them."""
    folders = [entry for entry in path if not entry.endswith(".zip")]
    spec = PathFinder.find_spec("pyspark", folders)
    if spec is None or not spec.submodule_search_locations:
        return []
    lib = os.path.realpath(os.path.join(list(spec.submodule_search_locations)[0], "python", "lib"))
    zips = [entry for entry in path
            if entry.endswith(".zip") and os.path.dirname(os.path.realpath(entry)) == lib]
    if PathFinder.find_spec("py4j", folders) is None:  # py4j only in its zip: keep that one
        zips = [entry for entry in zips if not os.path.basename(entry).startswith("py4j")]
    return zips


def main() -> None:
    for entry in redundant_zips(sys.path):
        sys.path.remove(entry)
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
