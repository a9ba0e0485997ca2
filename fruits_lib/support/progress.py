"""Live progress of the long stages in images (done/total, images/s, ETA): a tqdm bar on a terminal, lines otherwise.

Spark stages count their images with an accumulator (:func:`image_counter`) that the featurizer's
tasks add to; Spark merges a task's additions when the task ends, so the count moves task by task
and the stage's tasks must be small enough for it to move often (``pipeline.partitions_for``). Work
that runs in this process (e.g. augmenting photos) calls :meth:`Progress.update` itself.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

from tqdm import tqdm

REFRESH_SECONDS = 0.5  # how often a terminal's bar is redrawn (rate and ETA move between task ends too)
LINE_SECONDS = 60.0  # off a terminal (a log file, CI): a line per minute at most while a long stage runs
_COUNTER: dict = {}  # the current SparkContext's application id, image counter and the hook feeding it


def live(stream=None) -> bool:
    """Whether progress on ``stream`` (default stderr) is drawn live: a terminal, not a pipe or a file."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


class Progress:
    """``done`` out of ``total`` items of one stage: a live tqdm bar when ``stream`` is a terminal.

    Anywhere else (CI, a log file, a notebook) a stage longer than ``every`` seconds prints a line each
    ``every`` seconds as its count moves (``label: done/total images, R images/s, about M min left``), so a
    log shows a long stage alive; :meth:`close` prints one line: ``label: done/total images in S s (R images/s)``.
    """

    def __init__(self, label: str, total: int | None, unit: str = "images", stream=None,
                 every: float = LINE_SECONDS):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = self._last_line = time.perf_counter()
        self.every = every
        self.interactive = live(self.stream)
        self._bar = tqdm(total=total, desc=label, unit=f" {unit}", file=self.stream, dynamic_ncols=True,
                         mininterval=0.2, smoothing=0.3, leave=True) if self.interactive else None
        self._lock = threading.Lock()

    def update(self, count: int) -> None:
        """``count`` more items done."""
        self.set(self.done + count)

    def set(self, done: int) -> None:
        """``done`` items done in all (a count read from elsewhere, e.g. an accumulator); never goes back."""
        with self._lock:
            done = min(done, self.total) if self.total is not None else done
            if done > self.done:
                if self._bar is not None:
                    self._bar.update(done - self.done)
                self.done = done
                if self._bar is None and time.perf_counter() - self._last_line >= self.every:
                    self._line()
            elif self._bar is not None:
                self._bar.refresh()  # elapsed time, rate and ETA move even without a new count

    def _line(self) -> None:
        now = time.perf_counter()
        self._last_line, seconds = now, now - self.started
        rate = self.done / seconds if seconds > 0 else 0.0
        of = f"/{self.total}" if self.total is not None else ""
        left = (f", about {max(1, round((self.total - self.done) / rate / 60))} min left"
                if self.total is not None and rate > 0 and self.done < self.total else "")
        self.stream.write(f"{self.label}: {self.done}{of} {self.unit}, {rate:.1f} {self.unit}/s{left}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar, or print the stage's one summary line (when the stream is not a terminal)."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                return
            seconds = time.perf_counter() - self.started
            of = f"/{self.total}" if self.total is not None else ""
            rate = f", {self.done / seconds:.1f} {self.unit}/s" if seconds > 0 and self.done else ""
            self.stream.write(f"{self.label}: {self.done}{of} {self.unit} in {seconds:.1f} s{rate}\n")
            self.stream.flush()


@contextmanager
def progress(label: str, total: int | None, unit: str = "images", stream=None, every: float = LINE_SECONDS):
    """``with progress("augment", n) as bar: ... bar.update(1)``: a :class:`Progress` closed at the end."""
    bar = Progress(label, total, unit, stream, every)
    try:
        yield bar
    finally:
        bar.close()


class _CountImages:
    """Featurizer worker hook: adds each partition's images to the driver's counter when the partition is done."""

    def __init__(self, counter):
        self.counter = counter

    def __call__(self, event: str, details: dict) -> None:
        if event == "done":
            self.counter.add(details["images"])


def image_counter(spark):
    """This SparkContext's count of images featurized (an accumulator; it only grows).

    Made once per application, with a featurizer worker hook (``featurize.add_worker_hook``) that adds
    each partition's images: featurizers transformed afterwards count theirs. The driver sees a
    task's additions when the task ends.
    """
    from fruits_lib.featurize import add_worker_hook, remove_worker_hook

    sc = spark.sparkContext
    if _COUNTER.get("application") != sc.applicationId:
        if "hook" in _COUNTER:  # a stopped application's counter: its hook goes with it
            remove_worker_hook(_COUNTER["hook"])
        counter = sc.accumulator(0)
        _COUNTER.update(application=sc.applicationId, counter=counter, hook=_CountImages(counter))
        add_worker_hook(_COUNTER["hook"])
    return _COUNTER["counter"]


@contextmanager
def spark_images(spark, label: str, total: int | None, stream=None, every: float = REFRESH_SECONDS):
    """Show the images the body's Spark jobs featurize, out of ``total``, refreshed every ``every`` seconds."""
    counter = image_counter(spark)
    start = counter.value
    stop = threading.Event()
    with progress(label, total, "images", stream) as bar:
        def poll():
            while not stop.wait(every):
                bar.set(counter.value - start)

        thread = threading.Thread(target=poll, name=f"progress-{label}", daemon=True)
        thread.start()
        try:
            yield bar
        finally:
            stop.set()
            thread.join()
            bar.set(counter.value - start)
