"""The wheel is the product: fruits_lib only, with the dependencies its default engine needs, and it runs installed.

What the install test proves, and what it does not: the wheel is built as ``fruits_emr`` builds it for
EMR and installed (``--no-deps``, no index) into a fresh venv; that venv sees the project's pinned
stack through a ``.pth`` line instead of downloading it again (cheap, no network). It proves that the
installed copy, not the checkout, is what runs ``fruits run`` end to end (driver and Spark workers),
that every dependency the wheel declares is satisfied by the pinned stack, and that ``ai-edge-litert``
is declared. It does not prove that the declared list is complete on a machine without the dev stack
(TensorFlow, for instance, is visible here).
"""

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from helpers import SAMPLE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from fruits_emr.aws import build_wheel

    return build_wheel(out_dir=tmp_path_factory.mktemp("wheel"))


def _requires(wheel: Path) -> list:
    with zipfile.ZipFile(wheel) as whl:
        metadata = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        lines = whl.read(metadata).decode().splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]


def test_wheel_holds_the_product_only_and_declares_the_default_engine(wheel):
    with zipfile.ZipFile(wheel) as whl:
        packages = {name.split("/")[0] for name in whl.namelist() if ".dist-info/" not in name}
        modules = set(whl.namelist())
    assert packages == {"fruits_lib"}  # no bench, no fruits_emr, no tests
    assert {"fruits_lib/featurize.py", "fruits_lib/pipeline.py", "fruits_lib/cli.py",
            "fruits_lib/support/__init__.py", "fruits_lib/support/store.py",
            "fruits_lib/support/log4j2.properties"} <= modules  # the driver JVM's log configuration ships too
    # developer tooling stays in the checkout: notebook reports, the JVM class archive, the EMR magics' stand-ins
    assert not {"fruits_lib/report.py", "fruits_lib/spark_daemon.py"} & modules
    assert not [name for name in modules if name.startswith(("devtools/", "bench/", "notebooks/", "tests/"))]
    requires = [r.split(";")[0].replace(" ", "").lower() for r in _requires(wheel)]
    assert any(r.startswith("ai-edge-litert") for r in requires), requires  # LiteRT runs the tflite engine
    assert any(r.startswith("pyspark") for r in requires)


@pytest.mark.slow  # a venv of its own, then the chain in a real process
def test_installed_wheel_runs_the_chain_on_data_sample(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                              "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    # Only now, so that pip saw an empty venv: the pinned stack of this project, without its editable fruits_lib
    # (a plain path in a .pth: the editable finder's own .pth files there are not processed).
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "project_stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = dict(os.environ, PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python))
    env.pop("PYTHONPATH", None)
    probe = subprocess.run([str(python), "-c", (
        "import json, fruits_lib\n"
        "from importlib import metadata\n"
        "from packaging.requirements import Requirement\n"
        "dist = metadata.distribution('fruits_lib')\n"
        "missing = [r for r in dist.requires or [] if not Requirement(r).marker or Requirement(r).marker.evaluate()"
        " if not Requirement(r).specifier.contains(metadata.version(Requirement(r).name), prereleases=True)]\n"
        "print(json.dumps({'file': fruits_lib.__file__, 'dist': str(dist._path), 'unsatisfied': missing}))")],
        capture_output=True, text=True, cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stderr[-2000:]
    found = json.loads(probe.stdout)
    assert found["file"].startswith(site) and found["dist"].startswith(site), found  # the wheel, not the checkout
    assert found["unsatisfied"] == [], found

    output = tmp_path / "out"
    result = subprocess.run([str(env_dir / "bin" / "fruits"), "run", "--input", str(SAMPLE), "--output", str(output),
                             "--weights", "offline", "--image-size", "96", "--master", "local[2]"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["images_in"] == summary["images_ok"] == 160 and summary["engine"] == "tflite"
    assert summary["versions"]["fruits_lib"] == "0.1.0"


def test_the_bench_requirements_resolve_with_the_pinned_stack():
    """``make bench`` installs requirements-bench.txt (Ray Data, Daft) on top of the product's pins: a pin that
    a peer's own requirements exclude (tqdm 4.70 against daft's tqdm<4.68) must fail here, not in the bench."""
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        pytest.fail("uv is missing from the venv (make setup installs it)")
    root = Path(__file__).resolve().parents[1]
    resolved = subprocess.run([str(uv), "pip", "compile", "--quiet", "--python-version", "3.11",
                               str(root / "requirements-bench.txt")], capture_output=True, text=True, cwd=root,
                              timeout=300)
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    pins = dict(line.split("==", 1) for line in resolved.stdout.splitlines() if "==" in line and not line.startswith("#"))
    assert pins.get("daft") == "0.7.26" and pins.get("ray") == "2.60.0", "the peers at their pinned versions"
