"""Open every chapter in Colab: one repository URL in ``_config.yml``, copied into each notebook.

The book's repository is named in exactly one place, the ``repository:`` section of ``_config.yml``
(with ``launch_buttons: colab_url:``, which also gives every page its rocket-menu "Colab" button).
Two things in each chapter are generated from it:

* the start of the setup cell (the first code cell, which begins with ``# NBVAL_IGNORE_OUTPUT``):
  a short plain-Python block that, on Colab only, installs this package from the repository with
  pip. The package asks for ``torch>=2.2`` and nothing narrower, so pip keeps the torch that Colab
  ships; the cell then goes on to ``device = gm.pick_device()``, which takes Colab's GPU when the
  runtime has one;
* an "Open in Colab" badge under the chapter's title, linking to
  ``https://colab.research.google.com/github/<org>/<repo>/blob/<branch>/<path of the notebook>``.

After changing the repository in ``_config.yml``::

    python tools/colab.py sync    # rewrite the block and the badge in every book/**/*.ipynb
    python tools/colab.py check   # exit status 1 if a notebook's copy differs from _config.yml

Only the block and the badge are rewritten; every other line, cell, output and metadata entry stays
as it was (notebooks are read and written with ``nbformat``, version 4).
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

CONFIG_FILE = "_config.yml"
BOOK_DIR = "book"
BADGE_IMAGE = "book/figures/colab-badge.svg"  # relative to the book root
BADGE_ALT = "Open in Colab"
NBVAL_IGNORE = "# NBVAL_IGNORE_OUTPUT"
BLOCK_START = "# --- Colab setup: written from _config.yml by `python tools/colab.py sync`; edit it there ---"
BLOCK_END = "# --- end of Colab setup ---"
# A badge written by any version of `sync`: a linked image whose alt text is BADGE_ALT, alone on its line.
_BADGE_LINE = re.compile(r"^\[!\[" + re.escape(BADGE_ALT) + r"\]\([^)]*\)\]\([^)]*\)[ \t]*$", re.MULTILINE)
_GITHUB_URL = re.compile(r"^https://github\.com/(?P<org>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(?:\.git)?/?$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")


@dataclass(frozen=True)
class Repository:
    """Where the book's source lives, as ``_config.yml`` states it.

    Parameters
    ----------
    url : str
        ``https://github.com/<org>/<repo>`` (Colab opens notebooks from GitHub only).
    branch : str
        The branch that pip installs from and that the Colab links open.
    path_to_book : str
        The book root's folder inside the repository; ``""`` when it is the repository root.
    colab_url : str
        ``launch_buttons: colab_url:``, normally ``https://colab.research.google.com``.
    """

    url: str
    branch: str
    path_to_book: str
    colab_url: str

    def __post_init__(self) -> None:
        if not _GITHUB_URL.match(self.url):
            raise ValueError(f"repository url must be https://github.com/<org>/<repo> for Colab, not {self.url!r}")
        if not _BRANCH.match(self.branch):
            raise ValueError(f"unexpected characters in the repository branch {self.branch!r}")
        if not self.colab_url.startswith("https://"):
            raise ValueError(f"launch_buttons: colab_url must be an https URL, not {self.colab_url!r}")

    @property
    def github_path(self) -> str:
        """``<org>/<repo>``, as it appears in Colab and GitHub URLs."""
        match = _GITHUB_URL.match(self.url)
        return f"{match['org']}/{match['repo']}"

    @property
    def pip_requirement(self) -> str:
        """The pip requirement that installs this package from the repository's branch."""
        return f"genmodels @ git+{self.url.rstrip('/')}@{self.branch}"


def read_repository(root: Path | str = ".") -> Repository:
    """Read the repository and the Colab URL from the book's ``_config.yml``.

    Parameters
    ----------
    root : Path or str
        The book root (the folder holding ``_config.yml``; in this project the repository root).

    Returns
    -------
    Repository

    Raises
    ------
    KeyError
        If ``repository: url`` or ``launch_buttons: colab_url`` is missing.
    """
    import yaml  # PyYAML comes with jupyter-book; imported here so that `import genmodels` does not need it

    config = yaml.safe_load((Path(root) / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    repository = config.get("repository") or {}
    launch = config.get("launch_buttons") or {}
    if not repository.get("url"):
        raise KeyError(f"{CONFIG_FILE} sets no `repository: url:`")
    if not launch.get("colab_url"):
        raise KeyError(f"{CONFIG_FILE} sets no `launch_buttons: colab_url:`")
    return Repository(
        url=str(repository["url"]),
        branch=str(repository.get("branch") or "main"),
        path_to_book=str(repository.get("path_to_book") or "").strip("/"),
        colab_url=str(launch["colab_url"]).rstrip("/"),
    )


def setup_block(repo: Repository) -> str:
    """The lines that open every setup cell: install the package from the repository on Colab only.

    Plain Python (no ``%pip`` magic), so that it runs, and can be tested, outside IPython. It names no
    torch: pip keeps an installed torch that meets the package's lower bound, i.e. Colab's own. When pip
    fails, the cell stops with an error that says what to do (the repository may not be published yet,
    or be wrong: set ``REPOSITORY`` to a fork, or install the package by hand).

    Parameters
    ----------
    repo : Repository

    Returns
    -------
    str
        The block from :data:`BLOCK_START` to :data:`BLOCK_END`, without a trailing newline.
    """
    lines = [
        BLOCK_START,
        "# On Colab only: install this book's package from its repository; pip keeps Colab's own torch.",
        "import subprocess, sys",
        f"REPOSITORY, BRANCH = {json.dumps(repo.url)}, {json.dumps(repo.branch)}",
        'if "google.colab" in sys.modules:',
        '    if subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",',
        '                       f"genmodels @ git+{REPOSITORY}@{BRANCH}"]).returncode != 0:',
        '        raise RuntimeError(f"pip could not install genmodels from {REPOSITORY}@{BRANCH} (its message is above). "',
        '                           "If that repository is not published yet, or _config.yml\'s `repository:` is wrong, "',
        '                           "set REPOSITORY (and BRANCH) in this cell to a fork that has the book, or pip "',
        '                           "install the package by hand; then run this cell again.")',
        BLOCK_END,
    ]
    return "\n".join(lines)


def notebook_repo_path(repo: Repository, notebook: Path | str) -> str:
    """The notebook's path inside the repository, e.g. ``book/gan/minimax.ipynb``.

    Parameters
    ----------
    repo : Repository
    notebook : Path or str
        Relative to the book root, with forward or native separators.
    """
    relative = Path(notebook).as_posix()
    return f"{repo.path_to_book}/{relative}" if repo.path_to_book else relative


def colab_link(repo: Repository, notebook: Path | str) -> str:
    """The URL that opens ``notebook`` (relative to the book root) in Colab from the repository's branch."""
    return f"{repo.colab_url}/github/{repo.github_path}/blob/{repo.branch}/{notebook_repo_path(repo, notebook)}"


def badge(repo: Repository, notebook: Path | str) -> str:
    """The Markdown badge for a notebook: the book's own SVG, linked to the notebook's Colab URL.

    The image is a local file (Sphinx run with ``-W`` fails on a remote image, and the book is also read
    offline), referenced relative to the notebook.

    Parameters
    ----------
    repo : Repository
    notebook : Path or str
        Relative to the book root, e.g. ``book/gan/minimax.ipynb``.

    Returns
    -------
    str
        One line, ``[![Open in Colab](<image>)](<colab link>)``.
    """
    image = posixpath.relpath(BADGE_IMAGE, posixpath.dirname(Path(notebook).as_posix()) or ".")
    return f"[![{BADGE_ALT}]({image})]({colab_link(repo, notebook)})"


def notebooks(root: Path | str = ".") -> list[Path]:
    """Every chapter notebook, ``book/**/*.ipynb`` under the book root, sorted (checkpoints excluded)."""
    book = Path(root) / BOOK_DIR
    return sorted(p for p in book.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _with_block(source: str, block: str) -> str:
    """A setup cell's source with ``block`` right after its first line, replacing an earlier copy."""
    first, _, rest = source.partition("\n")
    if first.strip() != NBVAL_IGNORE:
        raise ValueError(
            f"the setup cell must start with {NBVAL_IGNORE!r} (its output differs on Colab), found {first!r}"
        )
    start = rest.find(BLOCK_START)
    if start != -1:
        end = rest.find(BLOCK_END, start)
        if end == -1:
            raise ValueError(f"the setup cell has {BLOCK_START!r} but no {BLOCK_END!r} after it")
        end += len(BLOCK_END)
        if rest.startswith("\n", end):
            end += 1
        rest = rest[:start] + rest[end:]
    return f"{first}\n{block}\n{rest}"


def _with_badge(source: str, line: str) -> str:
    """A title cell's source with the badge ``line`` after its first (title) line, replacing earlier badges."""
    if not source.lstrip().startswith("#"):
        raise ValueError("the first Markdown cell must start with the chapter's title (`# ...`)")
    title, _, rest = source.partition("\n")
    rest = _BADGE_LINE.sub("", rest).lstrip("\n")
    return f"{title}\n\n{line}\n\n{rest}" if rest else f"{title}\n\n{line}"


def sync_notebook(nb, repo: Repository, notebook: Path | str) -> bool:
    """Put the current setup block and badge into a notebook in memory.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        Read with ``nbformat.read(..., as_version=4)``; changed in place.
    repo : Repository
    notebook : Path or str
        The notebook's path relative to the book root (for its Colab link).

    Returns
    -------
    bool
        Whether a cell's source changed. Outputs and metadata are never touched.
    """
    code = next((cell for cell in nb.cells if cell.cell_type == "code"), None)
    markdown = next((cell for cell in nb.cells if cell.cell_type == "markdown"), None)
    if code is None or markdown is None:
        raise ValueError(f"{notebook}: a chapter needs a title cell and a setup cell")
    changed = False
    for cell, new in (
        (code, _with_block(code.source, setup_block(repo))),
        (markdown, _with_badge(markdown.source, badge(repo, notebook))),
    ):
        if cell.source != new:
            cell.source = new
            changed = True
    return changed


def sync(root: Path | str = ".", *, check: bool = False) -> list[Path]:
    """Rewrite the Colab block and badge of every chapter from ``_config.yml``.

    Parameters
    ----------
    root : Path or str
        The book root.
    check : bool
        Only report: write nothing.

    Returns
    -------
    list of Path
        The notebooks whose block or badge differed (and, unless ``check``, were rewritten).
    """
    import nbformat

    root = Path(root)
    repo = read_repository(root)
    changed = []
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        if sync_notebook(nb, repo, path.relative_to(root)):
            changed.append(path)
            if not check:
                nbformat.write(nb, path, version=4)
    return changed


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/colab.py {sync,check} [--root DIR]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python tools/colab.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=["sync", "check"],
        help="sync: rewrite the notebooks from _config.yml; check: fail if one differs",
    )
    parser.add_argument("--root", default=".", help="the book root, holding _config.yml (default: .)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    changed = sync(root, check=args.command == "check")
    for path in changed:
        verb = "differs from" if args.command == "check" else "updated from"
        print(f"{path.relative_to(root).as_posix()}: {verb} {CONFIG_FILE}")
    if args.command == "check":
        if not changed:
            print(f"all {len(notebooks(root))} notebooks match {CONFIG_FILE}")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
