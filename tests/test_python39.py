"""Executors on EMR 7.x run Python 3.9: the library must at least compile there (ruff checks the rest)."""

import os
import shutil
import subprocess

import pytest
from helpers import ROOT

PYTHON39 = shutil.which("python3.9")


@pytest.mark.skipif(PYTHON39 is None, reason="no python3.9 on this machine; ruff's py39 target still applies")
def test_library_compiles_with_python_3_9(tmp_path):
    env = dict(os.environ, PYENV_VERSION="3.9", PYTHONPYCACHEPREFIX=str(tmp_path))
    result = subprocess.run([PYTHON39, "-m", "compileall", "-q", "fruits_lib", "fruits_emr", "bench", "emr"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert "3.9" in subprocess.run([PYTHON39, "--version"], env=env, capture_output=True, text=True).stdout
    assert result.returncode == 0, result.stdout + result.stderr
