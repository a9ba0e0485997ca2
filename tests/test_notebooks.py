"""The notebooks, executed as CI runs them (the helpers they call are tested in test_notebook.py).

Both notebooks run with papermill through ``devtools.report.execute``, the same function as
``make report``. The ``python3`` kernel is this interpreter: jupyter_client starts a kernelspec
whose argv is ``python`` with ``sys.executable``, and the venv ships that kernelspec. 01_local runs
as committed, except that its output goes to a temporary folder and its app model is the one ``helpers.app``
built (test_app_model checks that recipe). 02_emr runs in local emulation, where
only its parameters change (here also ``IMAGE_SIZE`` 96: what it checks does not depend on the size).
A failing cell, or fewer figures than ``report.MIN_FIGURES``, fails the test. About a minute per
notebook on 2 cores: the tests that execute them are ``slow``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pandas as pd
import pytest

from devtools import report
from fruits_emr.config import EU_REGIONS
from fruits_lib.support import notebook

pytest_plugins = ["helpers.app"]  # ``app``: the recipe on data_sample/, 01_local's APP_MODEL


def _execute(name: str, parameters, tmp_path_factory) -> tuple:
    """Execute a notebook: ``(executed notebook, output folder, executed .ipynb)``, in a pytest temporary folder
    (pytest keeps the last three runs' folders; a ``tempfile`` folder stayed behind, 43 MB per run).

    The kernel inherits this process's environment: ``PYSPARK_PYTHON`` and ``PYSPARK_DRIVER_PYTHON``
    are this venv's interpreter (conftest), so Spark's Python workers started from the kernel are too.
    """
    folder = tmp_path_factory.mktemp(f"notebook-{name}")
    output, executed = folder / "out", folder / f"{name}.ipynb"
    assert os.environ["PYSPARK_PYTHON"] == os.environ["PYSPARK_DRIVER_PYTHON"] == sys.executable
    return report.execute(name, executed, parameters(output)), output, executed


@pytest.fixture(scope="module")
def local_notebook(app, tmp_path_factory):
    """01_local, its output in a temporary folder and its ``APP_MODEL`` the app recipe's model on data_sample/
    (helpers.app, checked by test_app_model): without one (a clean clone has no ``models/app``) the notebook
    fits that recipe again, about 2 min of the notebook's 2.5. Its recipe call is checked against the function
    by test_local_notebook_calls_the_recipe_as_it_is_defined."""
    return _execute(report.LOCAL, lambda output: {"OUTPUT": str(output), "APP_MODEL": str(app[1] / "model")},
                    tmp_path_factory)


@pytest.fixture(scope="module")
def emr_notebook(tmp_path_factory):
    return _execute(report.EMR, lambda output: {**report.emr_local_parameters(output), "IMAGE_SIZE": 96},
                    tmp_path_factory)


def _committed(name: str):
    return nbformat.read(str(report.NOTEBOOKS / f"{name}.ipynb"), as_version=4)


def _parameters(nb) -> dict:
    """The values of the cell tagged ``parameters`` (plain assignments)."""
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters'"
    values: dict = {}
    exec(cells[0].source, {}, values)
    return values


def _text(nb) -> str:
    """Everything the executed notebook printed (streams and text/plain results)."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _check_html(ipynb, figures: int) -> None:
    html = report.render_html(ipynb).read_text(encoding="utf-8")
    assert html.count("data:image/png;base64") >= figures
    assert "Traceback" not in html


# --------------------------------------------------------------------------- committed files
@pytest.mark.parametrize("name", [report.LOCAL, report.EMR])
def test_committed_notebooks_have_no_outputs_and_one_parameters_cell(name):
    nb = _committed(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs committed"
    assert {"INPUT", "OUTPUT", "MASTER", "WEIGHTS", "IMAGE_SIZE"} <= set(_parameters(nb))


def test_local_notebook_defaults_to_data_sample_and_offline_weights():
    values = _parameters(_committed(report.LOCAL))
    assert values["INPUT"] == "../data_sample" and values["WEIGHTS"] == "offline"
    assert notebook.project_path(values["INPUT"]) == str(report.REPO_ROOT / "data_sample")


def test_local_notebook_calls_the_recipe_as_it_is_defined():
    """The notebook's own build of the app model (taken when APP_MODEL holds none; the executed test gives it one)
    calls ``build_app_model`` with arguments the function takes."""
    import ast
    import inspect

    from fruits_lib import app_model

    calls = [node for cell in _committed(report.LOCAL).cells if cell.cell_type == "code"
             for node in ast.walk(ast.parse(cell.source))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "build_app_model"]
    assert len(calls) == 1, "one recipe call in 01_local"
    inspect.signature(app_model.build_app_model).bind(*calls[0].args, **{k.arg: k.value for k in calls[0].keywords})


def test_emr_notebook_defaults_to_s3_in_an_eu_region():
    values = _parameters(_committed(report.EMR))
    assert values["REGION"] in EU_REGIONS
    assert values["INPUT"].startswith("s3://") and values["OUTPUT"].startswith("s3://")
    assert values["MASTER"] is None and values["WEIGHTS"] == "imagenet"


# --------------------------------------------------------------------------- execution
def _displayed_counts(nb) -> dict:
    """The label counts the notebook displayed (``notebook.counts_table``), read back from its output."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "counts_table(" in cell.source:
            text = "".join(o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))
            counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+(\d+)\s*$", text, re.M)}
            counts.pop("total", None)
            return counts
    raise AssertionError("no counts_table cell in the notebook")


def _local(path: str) -> Path:
    """A published output's path (``file:`` URIs included) as a local Path."""
    return Path(urlparse(path).path if path.startswith("file:") else path)


def _check_run_values(nb, output, input_dir, weights_sha256: str) -> None:
    """The run the notebook made: counts from the input folder, k from the published vectors, weights' sha256."""
    summary = json.loads((output / "summary.json").read_text())
    expected = {d.name: sum(1 for f in d.iterdir() if f.is_file()) for d in input_dir.iterdir() if d.is_dir()}
    assert summary["labels"] == expected and _displayed_counts(nb) == expected
    assert summary["images_in"] == summary["images_ok"] == sum(expected.values()) and summary["images_failed"] == 0
    k, cumulative = summary["k"], summary["cumulative"]
    assert len(cumulative) == k and cumulative[-1] >= summary["pca_variance_threshold"]
    assert k == 1 or cumulative[-2] < summary["pca_variance_threshold"]  # the smallest such k
    pca = pd.read_parquet(_local(summary["outputs"]["pca"]))
    assert len(pca) == summary["images_ok"] and {len(v) for v in pca["pca"]} == {k}
    assert summary["weights"]["sha256"] == weights_sha256  # the offline weights, computed by the test itself
    metadata = [p for p in _local(summary["outputs"]["model"]).rglob("part-*") if p.parent.name == "metadata"]
    saved = [json.loads(line) for path in metadata for line in path.read_text().splitlines()
             if "weightsSha256" in line]
    assert [m["paramMap"]["weightsSha256"] for m in saved] == [weights_sha256]  # the saved featurizer's


@pytest.mark.slow
def test_local_notebook_executes_with_its_figures(local_notebook, offline_weights):
    nb, output, executed = local_notebook
    assert report.png_outputs(nb) >= 3  # image grid, explained variance, 2-D scatter
    _check_run_values(nb, output, report.REPO_ROOT / "data_sample", offline_weights.sha256)
    _check_html(executed, 3)


@pytest.mark.slow
def test_emr_notebook_executes_in_local_emulation(emr_notebook, offline_weights):
    nb, output, executed = emr_notebook
    assert report.png_outputs(nb) >= 2
    _check_run_values(nb, output, report.REPO_ROOT / "data_sample", offline_weights.sha256)
    assert json.loads((output / "summary.json").read_text())["image_size"] == 96  # the parameter reached the run
    assert "local stand-ins" in _text(nb)  # the %%configure / %matplot stand-ins were registered
    _check_html(executed, 2)


# --------------------------------------------------------------------------- helpers, no Spark
