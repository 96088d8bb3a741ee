"""Every chapter opens in Colab: the badge, the launch button and the setup cell's install block.

The repository is named once, in `_config.yml`; these tests read it there (with plain YAML, not through
`tools/colab.py`) and compare every notebook's copy against it. The install block is executed with a
fake `google.colab` module and a recording `subprocess.run`, so Colab itself is never needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import colab  # noqa: E402  (tools/colab.py: build tooling, outside the installed package)

yaml = pytest.importorskip("yaml")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted(
    p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)
QUICK_NOTEBOOK = Path("book/gan/minimax.ipynb")


def _config() -> dict:
    return yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))


def _setup_cell(nb) -> str:
    return next(cell for cell in nb.cells if cell.cell_type == "code").source


def _title_cell(nb) -> str:
    return next(cell for cell in nb.cells if cell.cell_type == "markdown").source


def _block(source: str) -> str:
    """The lines from the block's start marker to its end marker, as they stand in the cell."""
    lines = source.splitlines()
    start, end = lines.index(colab.BLOCK_START), lines.index(colab.BLOCK_END)
    return "\n".join(lines[start : end + 1])


class _RecordedRun:
    """A `subprocess.run` that records its calls and exits with `returncode` (pip's 1 for a failure)."""

    def __init__(self, returncode: int = 0) -> None:
        self.calls: list[tuple[tuple, dict]] = []
        self.returncode = returncode

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return subprocess.CompletedProcess(args[0] if args else kwargs.get("args"), self.returncode)


def _exec_block(source: str, monkeypatch, *, on_colab: bool, returncode: int = 0) -> _RecordedRun:
    run = _RecordedRun(returncode)
    monkeypatch.setattr(subprocess, "run", run)
    if on_colab:
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(_block(source), "<setup cell>", "exec"), {"__name__": "__main__"})
    return run


def test_config_sets_the_repository_and_the_colab_launch_button():
    config = _config()
    assert config["repository"]["url"] == "https://github.com/genmodels-book/genmodels"
    assert config["repository"]["branch"] == "main"
    assert (config["repository"].get("path_to_book") or "") == ""  # the book root is the repository root
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["html"]["use_repository_button"] is True
    assert (REPO_ROOT / colab.BADGE_IMAGE).is_file()


def test_the_notebooks_are_the_chapters_of_the_table_of_contents():
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    chapters = {c["file"] for part in toc["parts"] for c in part["chapters"]}
    assert QUICK_NOTEBOOK in NOTEBOOKS
    assert {str(p.with_suffix("").as_posix()) for p in NOTEBOOKS} <= chapters
    assert [p for p in colab.notebooks(REPO_ROOT)] == [REPO_ROOT / p for p in NOTEBOOKS]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=str)
def test_setup_cell_carries_the_block_with_the_configured_repository(notebook):
    repository = _config()["repository"]
    source = _setup_cell(nbformat.read(REPO_ROOT / notebook, as_version=4))
    lines = source.splitlines()
    assert lines[0] == "# NBVAL_IGNORE_OUTPUT"  # nbval never compares this cell's output
    assert lines[1] == colab.BLOCK_START  # the block comes first, before any import
    block = _block(source)
    assert f'REPOSITORY, BRANCH = "{repository["url"]}", "{repository["branch"]}"' in block.splitlines()
    assert block == colab.setup_block(colab.read_repository(REPO_ROOT))
    assert "device = gm.pick_device()" in source  # cuda (Colab's GPU), then mps, then cpu


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=str)
def test_badge_under_the_title_opens_this_notebook_in_colab(notebook):
    config = _config()
    org_repo = config["repository"]["url"].removeprefix("https://github.com/")
    link = (
        f"{config['launch_buttons']['colab_url']}/github/{org_repo}/blob/{config['repository']['branch']}/"
        f"{notebook.as_posix()}"
    )
    lines = _title_cell(nbformat.read(REPO_ROOT / notebook, as_version=4)).splitlines()
    assert lines[0].startswith("# ") and lines[1] == ""  # the badge comes right after the title
    image = os.path.relpath(REPO_ROOT / "book" / "figures" / "colab-badge.svg", (REPO_ROOT / notebook).parent)
    assert lines[2] == f"[![Open in Colab]({Path(image).as_posix()})]({link})"
    assert ((REPO_ROOT / notebook).parent / image).is_file()  # the book's own SVG, no remote image
    assert sum("colab.research.google.com" in line for line in lines) == 1


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=str)
def test_block_installs_the_package_from_the_repository_on_colab_only(notebook, monkeypatch, capsys):
    repository = _config()["repository"]
    source = _setup_cell(nbformat.read(REPO_ROOT / notebook, as_version=4))

    run = _exec_block(source, monkeypatch, on_colab=True)
    assert len(run.calls) == 1
    ((args, kwargs),) = run.calls
    assert args == (
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            f"genmodels @ git+{repository['url']}@{repository['branch']}",
        ],
    )
    assert kwargs == {}  # the exit status is checked by the block itself
    assert not any("torch" in str(arg).lower() for arg in args[0])  # Colab's preinstalled torch is kept

    run = _exec_block(source, monkeypatch, on_colab=False)
    assert run.calls == []
    assert capsys.readouterr().out == ""  # off Colab the block prints nothing either


def test_a_failing_pip_on_colab_stops_the_cell_with_what_to_do(monkeypatch, capsys):
    """The repository may not be published yet, or be wrong: the error names it and says how to go on."""
    repository = _config()["repository"]
    source = _setup_cell(nbformat.read(REPO_ROOT / QUICK_NOTEBOOK, as_version=4))
    with pytest.raises(RuntimeError) as err:
        _exec_block(source, monkeypatch, on_colab=True, returncode=1)
    message = str(err.value)
    assert f"{repository['url']}@{repository['branch']}" in message  # what pip was asked for
    assert "not published yet" in message and "`repository:`" in message
    assert "set REPOSITORY" in message and "fork" in message  # the way out: edit the cell ...
    assert "pip install the package by hand" in message  # ... or install it by hand
    assert capsys.readouterr().out == ""
    # The variable the message names is the one the block installs from: set it, and pip is asked for it.
    fork = source.replace(
        f'REPOSITORY, BRANCH = "{repository["url"]}"', 'REPOSITORY, BRANCH = "https://github.com/a-fork/genmodels"'
    )
    assert fork != source
    ((args, _),) = _exec_block(fork, monkeypatch, on_colab=True).calls
    assert args[0][-1] == f"genmodels @ git+https://github.com/a-fork/genmodels@{repository['branch']}"


def test_pyproject_asks_for_torch_with_lower_bounds_only():
    """pip keeps an installed torch that satisfies the requirement, so Colab's torch is not replaced."""
    tomllib = pytest.importorskip("tomllib")
    requirements = pytest.importorskip("packaging.requirements")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    found = {}
    for text in declared:
        requirement = requirements.Requirement(text)
        if requirement.name in ("torch", "torchvision"):
            found[requirement.name] = requirement
    assert set(found) == {"torch", "torchvision"}
    assert "torch" in [requirements.Requirement(r).name for r in project["dependencies"]]
    for requirement in found.values():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators and operators <= {">=", ">"}, f"{requirement}: only lower bounds keep Colab's build"
        assert requirement.url is None


def _copy_book(tmp_path: Path, config_text: str | None = None) -> Path:
    """A book root in tmp_path: _config.yml (or `config_text`) and a copy of the quick notebook."""
    (tmp_path / "_config.yml").write_text(
        config_text or (REPO_ROOT / "_config.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / QUICK_NOTEBOOK).parent.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / QUICK_NOTEBOOK, tmp_path / QUICK_NOTEBOOK)
    return tmp_path / QUICK_NOTEBOOK


def test_sync_replaces_an_old_copy_and_a_second_sync_changes_nothing(tmp_path):
    path = _copy_book(tmp_path)
    nb = nbformat.read(path, as_version=4)
    old = colab.Repository(
        url="https://github.com/old-org/old-name",
        branch="draft",
        path_to_book="",
        colab_url="https://colab.research.google.com",
    )
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    title = next(cell for cell in nb.cells if cell.cell_type == "markdown")
    setup.source = setup.source.replace(_block(setup.source), colab.setup_block(old))
    title.source = title.source.replace(title.source.splitlines()[2], colab.badge(old, QUICK_NOTEBOOK))
    assert "old-org/old-name" in setup.source and "old-org/old-name" in title.source
    nbformat.write(nb, path, version=4)

    assert colab.sync(tmp_path, check=True) == [path]  # check reports it and writes nothing
    assert "old-org" in path.read_text(encoding="utf-8")
    assert colab.main(["check", "--root", str(tmp_path)]) == 1

    assert colab.sync(tmp_path) == [path]
    assert path.read_bytes() == (REPO_ROOT / QUICK_NOTEBOOK).read_bytes()  # outputs and metadata untouched
    assert colab.sync(tmp_path) == []
    assert path.read_bytes() == (REPO_ROOT / QUICK_NOTEBOOK).read_bytes()
    assert colab.main(["check", "--root", str(tmp_path)]) == 0


def test_sync_inserts_the_block_and_badge_into_a_notebook_without_them(tmp_path):
    path = _copy_book(tmp_path)
    nb = nbformat.read(path, as_version=4)
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    title = next(cell for cell in nb.cells if cell.cell_type == "markdown")
    setup.source = setup.source.replace(_block(setup.source) + "\n", "")
    title.source = title.source.replace(title.source.splitlines()[2] + "\n\n", "")
    assert colab.BLOCK_START not in setup.source and "Open in Colab" not in title.source
    nbformat.write(nb, path, version=4)

    assert colab.sync(tmp_path) == [path]
    assert path.read_bytes() == (REPO_ROOT / QUICK_NOTEBOOK).read_bytes()
    assert colab.sync(tmp_path) == []


def test_changing_the_url_in_config_changes_every_copy(tmp_path):
    config = (REPO_ROOT / "_config.yml").read_text(encoding="utf-8")
    assert "https://github.com/genmodels-book/genmodels\n" in config
    path = _copy_book(
        tmp_path,
        config.replace("https://github.com/genmodels-book/genmodels\n", "https://github.com/a-fork/genmodels\n"),
    )
    assert colab.sync(tmp_path) == [path]
    nb = nbformat.read(path, as_version=4)
    assert '"https://github.com/a-fork/genmodels"' in _block(_setup_cell(nb))
    assert (
        "(https://colab.research.google.com/github/a-fork/genmodels/blob/main/book/gan/minimax.ipynb)"
        in _title_cell(nb)
    )
    assert "genmodels-book" not in _setup_cell(nb) + _title_cell(nb)


def test_repository_must_be_on_github_for_colab():
    with pytest.raises(ValueError, match="github"):
        colab.Repository(
            url="https://gitlab.com/a/b", branch="main", path_to_book="", colab_url="https://colab.research.google.com"
        )
    with pytest.raises(ValueError, match="branch"):
        colab.Repository(
            url="https://github.com/a/b",
            branch='main"; import os',
            path_to_book="",
            colab_url="https://colab.research.google.com",
        )
