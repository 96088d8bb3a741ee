"""Write the book's schematics as SVG: the figures that markdown pages and chapters show with a MyST figure.

Usage, from the repository root (``make figures`` runs the first)::

    python tools/make_figures.py                 # (re)write book/figures/*.svg
    python tools/make_figures.py --out DIR       # write them elsewhere (tests/test_schematics.py compares)

The files are deterministic, so a change to the drawing code shows up as a diff, and
``tests/test_schematics.py`` fails until the committed files are regenerated: matplotlib's SVG ids come from
``svg.hashsalt``, the date is left out of the metadata, and text stays text (``svg.fonttype = "none"``), so the
bytes depend only on the code and on matplotlib's version (pinned in requirements.txt).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genmodels.app import schematics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: file name -> the function that draws it
FIGURES = {
    "vae-graph.svg": schematics.vae_graph_figure,
    "gan-loop.svg": schematics.gan_loop_figure,
    "kl-directions.svg": schematics.kl_directions_figure,
}
SVG_SETTINGS = {"svg.hashsalt": "genmodels", "svg.fonttype": "none", "font.family": "DejaVu Sans"}


def write_figures(out: Path) -> list:
    """Draw every figure of :data:`FIGURES` and write it to ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(SVG_SETTINGS):
        for name, draw in FIGURES.items():
            fig = draw()
            path = out / name
            fig.savefig(path, format="svg", metadata={"Date": None})
            plt.close(fig)
            written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "book" / "figures", help="folder for the SVG files")
    args = parser.parse_args(argv)
    for path in write_figures(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
