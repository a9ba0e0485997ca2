"""Show the progress of long Spark jobs: tasks done out of tasks, from Spark's status tracker."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager


@contextmanager
def spark_progress(spark, label: str, every: float = 2.0, stream=None):
    """Print ``label: done/total tasks`` while the body runs (in place on a terminal, a line per 10% otherwise)."""
    stream = stream or sys.stderr
    tracker = spark.sparkContext.statusTracker()
    stop = threading.Event()
    interactive = hasattr(stream, "isatty") and stream.isatty()
    started = time.time()

    def poll():
        last = -1
        while not stop.wait(every):
            done = total = 0
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info is not None:
                    done += info.numCompletedTasks
                    total += info.numTasks
            if not total:
                continue
            line = f"  {label}: {done}/{total} tasks ({done / total:.0%}), {time.time() - started:.0f} s"
            if interactive:
                stream.write("\r" + line)
                stream.flush()
            elif int(10 * done / total) != last:
                last = int(10 * done / total)
                stream.write(line + "\n")
                stream.flush()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if interactive:
            stream.write("\r" + " " * 70 + "\r")
            stream.flush()
