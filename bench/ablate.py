"""Ablations: ``fruits run`` with one of the session's settings switched back off, to measure what it brings.

The bench builds the session itself (``session.get_spark(conf=...)``, Spark settings only) before the
command line runs, which then uses that active session; the class archive is left out of the process's
environment. Nothing in the library takes an ablation argument or is patched. ``python -m bench.observe --ablate NAME[,NAME] -- run ...`` runs one.
"""

from __future__ import annotations

import sys

ABLATIONS = {
    "arrow_batch": "Arrow maxRecordsPerBatch at Spark's default (10,000): a partition in one batch",
    "jit": "the driver JVM with its default JIT (C1 + C2) instead of C1 only",
    "class_archive": "the driver JVM without its class archive (devtools.jvm_archive): classes loaded from the jars",
}


def ablated_conf(names: list) -> dict:
    """Spark settings that switch the named levers off (``conf:KEY=VALUE`` sets any other one)."""
    conf = {}
    for name in names:
        if name.startswith("conf:"):  # experiments: conf:KEY=VALUE overrides a local Spark default
            key, _, value = name[5:].partition("=")
            conf[key] = value
        elif name == "arrow_batch":
            conf["spark.sql.execution.arrow.maxRecordsPerBatch"] = "10000"
        elif name == "jit":
            conf["spark.driver.extraJavaOptions"] = ""  # the fixed heap (-Xms) is still appended
        elif name == "class_archive":
            continue  # not a Spark setting: the process's environment (ablated_env)
        else:
            raise SystemExit(f"unknown ablation {name!r}: one of {', '.join(ABLATIONS)} or conf:KEY=VALUE")
    return conf


def ablated_env(names: list) -> dict:
    """Environment of the process for the named levers: no class archive is an empty ``SPARK_SUBMIT_OPTS``."""
    return {"SPARK_SUBMIT_OPTS": ""} if "class_archive" in names else {}


def ablated_cli(names: str, argv: list) -> None:
    """``fruits ARGV`` (``run`` only) on a session started here with the levers ``names`` switched off."""
    from fruits_lib import cli
    from fruits_lib.support.session import get_spark

    args = cli.build_parser().parse_args(argv)
    if args.command != "run":
        raise SystemExit("--ablate applies to the run command only")
    get_spark(args.master, conf=ablated_conf(list(filter(None, names.split(",")))))  # the CLI then uses it
    cli.main(argv)


if __name__ == "__main__":
    ablated_cli(sys.argv[1], sys.argv[2:])
