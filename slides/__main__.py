"""``python -m slides --run OUT --out docs/presentation.pptx [--pdf]``: the diagram, then the deck."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slides import architecture, deck
from slides.sources import REPO_ROOT, Sources


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m slides", description=__doc__)
    parser.add_argument("--run", required=True, help="a finished run's output folder (summary.json, pca/, ...)")
    parser.add_argument("--out", default="docs/presentation.pptx", help="the .pptx to write")
    parser.add_argument("--architecture", default=str(REPO_ROOT / "docs" / "architecture.png"),
                        help="where to draw the architecture diagram (PNG)")
    parser.add_argument("--repo", default=str(REPO_ROOT), help="folder holding bench/ and emr/")
    parser.add_argument("--pdf", action="store_true",
                        help="also render the deck to PDF beside it with LibreOffice (soffice) headless")
    return parser


def to_pdf(pptx: Path) -> Path:
    """Render ``pptx`` to ``pptx.with_suffix('.pdf')`` with LibreOffice headless; a person looks at this one."""
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        raise SystemExit("slides: --pdf needs LibreOffice (apt-get install -y libreoffice-impress)")
    with tempfile.TemporaryDirectory(prefix="fruits-soffice-") as profile:
        subprocess.run([office, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                        "--outdir", str(pptx.parent), str(pptx)], check=True, stdout=subprocess.DEVNULL)
    return pptx.with_suffix(".pdf")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    run, out, repo = Path(args.run), Path(args.out), Path(args.repo)
    if not run.is_dir():
        print(f"slides: run folder not found: {run} (make run writes output/sample)", file=sys.stderr)
        raise SystemExit(2)
    if out.suffix != ".pptx":
        print(f"slides: --out must end in .pptx, not {out}", file=sys.stderr)
        raise SystemExit(2)
    started = time.perf_counter()
    sources = Sources.load(run, repo, architecture=Path(args.architecture))
    try:
        architecture.draw(sources.cluster, sources.prices, Path(args.architecture))
        print(f"slides: drew {args.architecture}")
    except architecture.GraphvizMissing as err:
        print(f"slides: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    deck.build(sources, out)
    print(f"slides: wrote {out} ({len(deck.SLIDES)} slides) from {run}")
    if args.pdf:
        print(f"slides: rendered {to_pdf(out)}")
    print(f"slides: done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
