"""Write the appendix of run records from the chapters' stored outputs.

Usage, from the repository root (``make notebooks`` runs it after executing the chapters)::

    python tools/run_records.py               # (re)write book/appendix/_run-records.md
    python tools/run_records.py --check       # exit 1 if that file differs from what the notebooks hold

Each chapter ends with ``record.finish(...)`` (:class:`genmodels.app.provenance.RunRecord`), which stores its
record in the output's metadata. This script reads the chapters in the order of ``_toc.yml`` and writes one
table (chapter, budget, data, device, time, date) and, per chapter, the details. ``tests/test_run_records.py``
fails while the committed file differs from what the notebooks hold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Tuple

import yaml

from genmodels.app.provenance import _duration, records_in

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "appendix" / "_run-records.md"


def chapters(root: Path = ROOT) -> List[Path]:
    """The notebooks of ``_toc.yml``, in the book's order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").exists()]


def _title(nb: dict) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "(untitled)"


def collect(root: Path = ROOT) -> List[Tuple[Path, str, list]]:
    """``(notebook, title, records)`` for every chapter notebook."""
    out = []
    for path in chapters(root):
        nb = json.loads(path.read_text(encoding="utf-8"))
        out.append((path, _title(nb), records_in(nb)))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(root: Path = ROOT) -> str:
    """The markdown of the appendix's records (a table, then the details of each chapter)."""
    rows, sections, total = [], [], 0.0
    for path, title, records in collect(root):
        doc = path.relative_to(root / "book").with_suffix("").as_posix()
        link = f"{{doc}}`{_cell(title)} <../{doc}>`"
        if not records:
            rows.append(f"| {link} | no record stored | | | | |")
            continue
        for r in records:
            total += r["seconds"]
            rows.append(
                f"| {link} | {r['budget']} ({_cell(r['settings'])}) | {_cell('; '.join(r['data']))} | "
                f"{_cell(r['device'])} | {_duration(r['seconds'])} | {r['date']} |"
            )
            load = ", ".join("n/a" if v is None else f"{v:.1f}" for v in r["load_average"])
            lines = [
                f"- torch {r['torch']}, genmodels {r['genmodels']}; 1-minute load average at the start and the "
                f"end: {load}",
                *(f"- {_cell(d)}" for d in r["details"]),
            ]
            sections.append(f"### {title}\n\n" + "\n".join(lines))
    table = "| Chapter | Budget | Data | Device | Time | Date |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
    table += f"\n| **All chapters, one after another** (what `make notebooks` runs) | | | | **{_duration(total)}** | |"
    details = "## Details by chapter\n\n" + "\n\n".join(sections) if sections else ""
    return table + "\n\n" + details + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.relative_to(ROOT)} is {'up to date' if same else 'stale: run python tools/run_records.py'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
