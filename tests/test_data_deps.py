"""`make data-deps` (tools/data-deps.sh) against the situations a fresh machine can be in.

The script runs with a PATH that holds only fake `apt-get` and `id` commands and the few real tools it needs, and
with a fake Fashion-MNIST folder, so the real system is never touched. The fake apt-get "installs"
dataset-fashion-mnist by writing the four files, fails like apt-get when told to, or succeeds without writing them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from genmodels.engine import sources

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tools" / "data-deps.sh"
FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
REAL_TOOLS = ("mkdir", "rm", "grep", "tail")

FAKE_ID = """#!/bin/sh
[ "$1" = -u ] && echo "$FAKE_UID"
"""
FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> "$CALLS"
[ "$1" = update ] && exit 0
[ -n "$FAKE_APT_FAIL" ] && { echo "E: Unable to locate package dataset-fashion-mnist"; exit 100; }
[ -n "$FAKE_APT_EMPTY" ] && exit 0
for pkg in "$@"; do
  [ "$pkg" = dataset-fashion-mnist ] && for f in $FILES; do
    mkdir -p "$DATA_DEPS_FASHION_DIR"; echo data > "$DATA_DEPS_FASHION_DIR/$f"
  done
done
exit 0
"""


class Machine:
    """A fake machine: a bin folder on PATH, a Fashion-MNIST folder, and a log of the commands called."""

    def __init__(self, root: Path, *, files=(), uid: int = 0, apt: bool = True) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.fashion = root / "usr-share-datasets" / "fashion-mnist"
        self.work = root / "venv"
        self.calls = root / "calls.log"
        self.calls.touch()
        for tool in REAL_TOOLS:
            (self.bin / tool).symlink_to(shutil.which(tool))
        self._write("id", FAKE_ID)
        if apt:
            self._write("apt-get", FAKE_APT)
        for name in files:
            self.fashion.mkdir(parents=True, exist_ok=True)
            (self.fashion / name).write_text("data\n")
        self.uid = uid

    def _write(self, name: str, text: str) -> None:
        (self.bin / name).write_text(text)
        (self.bin / name).chmod(0o755)

    def run(self, **env: str) -> subprocess.CompletedProcess:
        environ = {
            "PATH": str(self.bin),
            "CALLS": str(self.calls),
            "FAKE_UID": str(self.uid),
            "FILES": " ".join(FILES),
            "DATA_DEPS_FASHION_DIR": str(self.fashion),
            **env,
        }
        return subprocess.run(
            [shutil.which("bash"), str(SCRIPT), str(self.work)], env=environ, capture_output=True, text=True, timeout=60
        )

    def apt_installs(self) -> list[list[str]]:
        """The package lists of every `apt-get install` call, in order."""
        calls = [line.split() for line in self.calls.read_text().splitlines()]
        return [[w for w in c[2:] if not w.startswith("-")] for c in calls if c[:2] == ["apt-get", "install"]]

    @property
    def problem(self) -> str:
        path = self.work / "data-deps-problem.txt"
        return path.read_text() if path.exists() else ""

    @property
    def has_files(self) -> bool:
        return all((self.fashion / f).is_file() for f in FILES)


@pytest.fixture
def machine(tmp_path):
    return lambda **kw: Machine(tmp_path, **kw)


@pytest.mark.parametrize("present", [FILES, FILES[:3], ()], ids=["all", "one missing", "none"])
def test_installs_the_package_only_when_a_file_is_missing(machine, present):
    m = machine(files=present)
    result = m.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert m.apt_installs() == ([] if list(present) == FILES else [["dataset-fashion-mnist"]])
    assert m.has_files and m.problem == "", result.stdout


def test_not_root_installs_nothing_and_says_why(machine):
    m = machine(uid=1000)
    result = m.run()
    assert result.returncode == 0 and m.apt_installs() == []
    lines = [line for line in result.stdout.splitlines() if line.startswith("data-deps:")]
    assert "root" in lines[0] and "apt-get install dataset-fashion-mnist" in m.problem, result.stdout


def test_no_apt_get_says_so(machine):
    m = machine(apt=False)
    assert m.run().returncode == 0
    assert "no apt-get" in m.problem and not m.has_files


def test_a_failing_apt_get_is_reported_in_one_line_and_does_not_fail_make(machine):
    m = machine()
    result = m.run(FAKE_APT_FAIL="1")
    assert result.returncode == 0
    failed = [line for line in result.stdout.splitlines() if "failed" in line]
    assert len(failed) == 1 and "Unable to locate package" in failed[0], result.stdout
    assert "Unable to locate package" in m.problem


def test_an_install_that_leaves_the_files_missing_is_reported(machine):
    m = machine()
    assert m.run(FAKE_APT_EMPTY="1").returncode == 0
    assert "still missing" in m.problem


def test_a_later_successful_run_clears_the_recorded_problem(machine):
    m = machine()
    m.run(FAKE_APT_FAIL="1")
    assert m.problem
    m.run()
    assert m.problem == "" and m.has_files


def test_the_script_looks_where_the_loader_looks_and_make_test_runs_it():
    default = re.search(r"fashion=\$\{DATA_DEPS_FASHION_DIR:-([^}]+)\}", SCRIPT.read_text()).group(1)
    assert Path(default) == Path(sources.DEBIAN_FASHION_DIR)
    assert re.search(r"^test-unit:.*\bdata-deps\b", (REPO_ROOT / "Makefile").read_text(), re.M)


def test_the_script_checks_the_file_names_the_loader_reads():
    """A file name that drifted in either place would install nothing, or skip the test, on a complete folder."""
    listed = re.search(r"^files=\(([^)]*)\)", SCRIPT.read_text(), re.M).group(1).split()
    loader = [name + ".gz" for split in ("train", "test") for name in sources._IDX_NAMES[split]]
    assert listed == loader == FILES
