"""``python -m devtools.report [--output reports/]``: execute both notebooks and render them to HTML.

``01_local`` runs as committed. ``02_emr`` runs in local emulation, where only its parameters change
(local folders instead of ``s3://``, a local master, the offline weights). The executed copies and
their HTML go to ``reports/``, which git ignores. The committed notebooks stay without outputs.
The tests execute the notebooks with the same function, :func:`execute`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
LOCAL, EMR = "01_local", "02_emr"
# Figures each executed notebook must show: 01 the grid, explained variance and scatter; 02 at least two.
MIN_FIGURES = {LOCAL: 3, EMR: 2}


class NotebookError(RuntimeError):
    """A notebook failed a cell or is missing a figure."""


def emr_local_parameters(output: str, input_path: str | None = None) -> dict:
    """Parameters that turn 02_emr into a local run: data_sample/, a local output, local[2], offline weights."""
    return {"INPUT": str(input_path or REPO_ROOT / "data_sample"), "OUTPUT": str(output),
            "MASTER": "local[2]", "WEIGHTS": "offline"}


def png_outputs(nb) -> int:
    """Number of ``image/png`` outputs in an executed notebook: one per figure shown."""
    return sum("image/png" in output.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", []))


def execute(name: str, target: Path, parameters: dict | None = None, timeout: int = 900):
    """Run ``notebooks/<name>.ipynb`` with papermill into ``target`` and return the executed notebook.

    The kernel is ``python3``, which is this interpreter when it runs from the venv. Its cwd is
    ``notebooks/``, as in JupyterLab. A failing cell raises (papermill still writes ``target``, with
    the error shown), and so does an executed notebook with fewer figures than ``MIN_FIGURES``.
    """
    import papermill

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this venv too
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        nb = papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(target), parameters=parameters or {},
                                        kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False,
                                        execution_timeout=timeout)
    except papermill.PapermillExecutionError as exc:
        raise NotebookError(f"{name}: cell {exc.exec_count} failed: {exc.ename}: {exc.evalue} (see {target})") from exc
    figures = png_outputs(nb)
    if figures < MIN_FIGURES.get(name, 0):
        raise NotebookError(f"{name}: {figures} figure(s) shown, expected at least {MIN_FIGURES[name]} (see {target})")
    return nb


def render_html(ipynb: Path) -> Path:
    """Render an executed notebook to a standalone HTML file next to it (figures embedded)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(ipynb))
    html = Path(ipynb).with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.report", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="reports", help="folder of the executed notebooks and HTML (reports/)")
    args = parser.parse_args(argv)
    folder = Path(args.output).resolve()
    runs = [(LOCAL, {}), (EMR, emr_local_parameters(REPO_ROOT / "output" / "notebook_emr_local"))]
    failed = False
    for name, parameters in runs:
        target = folder / f"{name}.ipynb"
        started = time.perf_counter()
        try:
            nb = execute(name, target, parameters)
            status = f"executed in {time.perf_counter() - started:.0f} s, {png_outputs(nb)} figures"
        except NotebookError as exc:
            failed, status = True, f"FAILED: {exc}"
        html = render_html(target) if target.exists() else None
        print(f"{name}: {status}\n  {target}\n  {html or '(no HTML: the notebook did not run)'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
