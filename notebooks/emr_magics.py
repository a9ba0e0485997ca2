"""Local stand-ins for the EMR PySpark kernel's ``%matplot`` and ``%%configure`` (a checkout only, not the wheel).

Beside the notebooks, so a local kernel (cwd ``notebooks/``) imports it; on EMR JupyterHub it is
absent and sparkmagic's own magics are used. Python 3.9 compatible, like the EMR nodes.
"""

from __future__ import annotations

import json

from fruits_lib.support import plot
from fruits_lib.support.notebook import show_png


def register_emr_magics() -> bool:
    """Register local stand-ins for the EMR PySpark kernel's ``%matplot`` and ``%%configure``; True if it did.

    On EMR JupyterHub, sparkmagic runs those magics before any code reaches Python. This call then
    runs in the Livy session, where there is no IPython, so it does nothing. Locally they are missing,
    so 02_emr could not run unchanged: ``%matplot`` shows the current figure, and ``%%configure``
    prints what it would set. Pyplot also switches to the headless Agg backend, as in a Livy session,
    so a figure appears once, through ``%matplot``.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    magics = shell.magics_manager.magics
    added = False
    if "matplot" not in magics["line"]:
        shell.register_magic_function(_matplot, "line", "matplot")
        plot.plt.switch_backend("agg")
        added = True
    if "configure" not in magics["cell"]:
        shell.register_magic_function(_configure, "cell", "configure")
        added = True
    return added


def _matplot(line: str) -> None:
    """Local ``%matplot plt``: show the current figure of the named pyplot module as PNG (as Livy does), then close it."""
    from IPython import get_ipython

    pyplot = get_ipython().user_ns[line.strip() or "plt"]
    figure = pyplot.gcf()
    show_png(plot.to_png(figure, dpi=100))
    pyplot.close(figure)


def _configure(line: str, cell: str) -> None:
    """Local ``%%configure``: checks the body is valid JSON, prints it and applies nothing (no Livy here)."""
    settings = json.loads(cell)
    print(f"local emulation: %%configure {line.strip()} is not applied; on EMR the Livy session "
          "would (re)start with:\n" + json.dumps(settings, indent=2))
