"""Watch the featurizer's Python workers through its public hook: model loads, tasks, images, peak RSS.

``python -m bench.observe --stats DIR [--fail-first-attempt P] [--ablate NAMES] -- run ...`` runs the
``fruits`` command line with :class:`WorkerLog` (and :class:`FailFirstAttempt`) added as worker
hooks (``fruits_lib.featurize.add_worker_hook``): the bench reads each worker's record, the tests
count model loads and make one task fail once. Nothing of this is in the library's worker path.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from pyspark import cloudpickle

MODEL_LOADS_PREFIX = "model-loads-"  # <stats>/model-loads-<pid>.jsonl: one line per real model load
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import bench/


class WorkerLog:
    """A worker hook writing ``<folder>/model-loads-<pid>.jsonl`` (each real load) and ``worker-<pid>.json``.

    ``worker-<pid>.json``: loads per model key (``builds``), tasks and images so far, peak RSS and
    the seconds spent loading, decoding, predicting. Each load is a line of its own, so a worker
    that loads the same model twice shows two lines.
    """

    def __init__(self, folder: str):
        self.folder = str(folder)

    def __call__(self, event: str, details: dict) -> None:
        os.makedirs(self.folder, exist_ok=True)
        if event == "load":
            record = {"pid": os.getpid(), "time": time.time(), "key": details["key"],
                      "engine": details["key"].rsplit("-", 1)[-1], "seconds": round(details["seconds"], 3)}
            with open(os.path.join(self.folder, f"{MODEL_LOADS_PREFIX}{os.getpid()}.jsonl"), "a") as log:
                log.write(json.dumps(record) + "\n")
        elif event == "done":
            self._record(details)

    def _record(self, details: dict) -> None:
        path = os.path.join(self.folder, f"worker-{os.getpid()}.json")
        previous = {}
        if os.path.exists(path):
            with open(path) as handle:
                previous = json.load(handle)
        stats = {"pid": os.getpid(), "builds": details["loads"],
                 "images": previous.get("images", 0) + details["images"], "tasks": previous.get("tasks", 0) + 1,
                 "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                 "seconds": {name: round(value, 3) for name, value in details["seconds"].items()}}
        with open(path + ".tmp", "w") as handle:
            json.dump(stats, handle)
        os.replace(path + ".tmp", path)


class FailFirstAttempt:
    """A worker hook failing the first attempt of partition ``partition`` (to see Spark retry it).

    Leaves ``<folder>/injected-failure-partition-<P>`` behind, so a test can tell the failure happened.
    """

    def __init__(self, partition: int, folder: str):
        self.partition, self.folder = int(partition), str(folder)

    def __call__(self, event: str, details: dict) -> None:
        from pyspark import TaskContext

        context = TaskContext.get()
        if event != "start" or context is None:
            return
        if context.partitionId() == self.partition and context.attemptNumber() == 0:
            os.makedirs(self.folder, exist_ok=True)
            open(os.path.join(self.folder, f"injected-failure-partition-{self.partition}"), "w").close()
            raise RuntimeError(f"injected failure (first attempt of partition {self.partition})")


def read_model_loads(folder) -> list:
    """Every model load logged by :class:`WorkerLog` under ``folder``, oldest first."""
    records = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.startswith(MODEL_LOADS_PREFIX) and name.endswith(".jsonl"):
            with open(os.path.join(folder, name)) as log:
                records.extend(json.loads(line) for line in log if line.strip())
    return sorted(records, key=lambda r: r["time"])


def read_worker_stats(folder) -> list:
    """The per-worker records :class:`WorkerLog` wrote under ``folder``."""
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [json.load(open(os.path.join(folder, n))) for n in names if n.startswith("worker-") and n.endswith(".json")]


def main(argv=None) -> None:
    """``--stats DIR [--fail-first-attempt P] [--ablate NAMES] -- ARGS``: ``fruits ARGS`` with the hooks."""
    import argparse

    from fruits_lib import cli
    from fruits_lib.featurize import add_worker_hook

    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m bench.observe")
    parser.add_argument("--stats", required=True)
    parser.add_argument("--fail-first-attempt", type=int)
    parser.add_argument("--ablate", default="")
    options, rest = parser.parse_args(argv[:split]), argv[split + 1:]
    add_worker_hook(WorkerLog(options.stats))
    if options.fail_first_attempt is not None:
        add_worker_hook(FailFirstAttempt(options.fail_first_attempt, options.stats))
    if options.ablate:
        from bench.ablate import ablated_cli

        return ablated_cli(options.ablate, rest)
    cli.main(rest)


if __name__ == "__main__":
    main()
