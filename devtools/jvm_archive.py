"""The local driver JVM's class archive (Java AppCDS): an opt-in developer tool, outside the wheel.

A local driver JVM loads ~11,000 classes from ~250 jars during its first jobs; with an archive they come
parsed and verified from one mapped file (docs/performance.md: the measured gain). The library knows
nothing of it: the archive reaches the driver JVM through ``SPARK_SUBMIT_OPTS``, which Spark's launcher
adds to the driver's java command line. ``make jvm-archive`` makes it (``make bench`` does, its figures are
taken with it); ``make run``, ``make test`` and ``make bench`` export the options, empty without an archive.

    python -m devtools.jvm_archive            # make this machine's archive once (~30 s), print its path
    python -m devtools.jvm_archive --options  # the SPARK_SUBMIT_OPTS that use it (empty when absent)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUIET = "-Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"  # a missing or outdated archive is simply not used
KEPT = 3  # each new venv has new jars, so a new archive (~150 MB): only the newest few are kept


def _cache_dir() -> Path:
    from fruits_lib.support.store import cache_dir

    return cache_dir()


def _java() -> Path | None:
    """The ``java`` spark-submit starts: ``$JAVA_HOME/bin/java``, else the one on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def archive_path() -> Path | None:
    """This machine's archive: one per Java build and PySpark install (its jars' names, sizes, mtimes).

    The JVM silently ignores an archive whose class path changed (a venv re-created at the same path
    included): each jar's stat is in the key, so a stale archive is never picked up for a new one.
    """
    import pyspark

    java = _java()
    if java is None:
        return None
    jars = Path(pyspark.__file__).parent / "jars"
    listing = sorted((jar.name, stat.st_size, stat.st_mtime_ns)
                     for jar, stat in ((jar, jar.stat()) for jar in jars.iterdir())) if jars.is_dir() else []
    stamp = f"{java}:{java.stat().st_mtime_ns}:{jars}:{pyspark.__version__}:{listing}"
    return _cache_dir() / "jvm" / f"spark-{pyspark.__version__}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.jsa"


def options() -> str:
    """``SPARK_SUBMIT_OPTS`` mapping this machine's archive, or ``""`` when there is none."""
    path = archive_path()
    return f"-XX:SharedArchiveFile={path} {QUIET}" if path is not None and path.exists() else ""


def _session_gone(sid: int, timeout: float) -> None:
    """Wait until no process of session ``sid`` is left (the driver JVM writes the archive as it exits)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        alive = False
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    alive = alive or os.getsid(int(entry)) == sid
                except (ProcessLookupError, PermissionError):
                    pass
        if not alive:
            return
        time.sleep(0.5)


def make(weights: str = "offline", log=print, command: list | None = None) -> Path | None:
    """Make the archive once: ``fruits run`` on 4 synthetic images with ``-XX:ArchiveClassesAtExit``.

    The JVM dumps to a private name at exit, renamed into place once the whole process group is gone:
    a half-written archive is never used. ``command``: another program whose driver JVM's classes are archived
    instead of that run (the test's bare session start).
    """
    path = archive_path()
    if path is None or path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with tempfile.TemporaryDirectory(prefix="fruits-class-archive-") as folder:
        env = dict(os.environ, SPARK_SUBMIT_OPTS=f"-XX:ArchiveClassesAtExit={partial} {QUIET}",
                   PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable))
        sample = [sys.executable, "-m", "fruits_lib", "make-sample", "--output", f"{folder}/in", "--per-class", "2"]
        chain = [sys.executable, "-m", "fruits_lib", "run", "--input", f"{folder}/in", "--output", f"{folder}/out",
                 "--weights", weights, "--pca-k", "2", "--master", "local[2]"]
        if command is None:
            subprocess.run(sample, capture_output=True, check=True)
        child = subprocess.Popen(command or chain, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        _, err = child.communicate()
        _session_gone(child.pid, timeout=300)
    if child.returncode != 0 or not partial.exists() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        log(f"no JVM class archive ({(err or '').strip().splitlines()[-1:] or 'no archive written'})")
        return None
    os.replace(partial, path)
    prune(keep=KEPT)
    return path


def prune(keep: int = KEPT) -> list:
    """Delete all but the ``keep`` newest archives of the cache; returns the deleted paths.

    The JVM maps an archive read-only, so one still in use keeps working (Linux frees it at exit).
    """
    from fruits_lib.support.store import prune_cache

    return prune_cache("jvm/spark-*.jsa", keep)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--options"]:
        print(options())
        return 0
    path = make(log=lambda line: print(line, file=sys.stderr))
    print(f"JVM class archive for local runs: {path}" if path else "no JVM class archive: runs start without it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
