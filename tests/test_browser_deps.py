"""`make browser-deps` (tools/browser-deps.sh) against the situations a fresh machine can be in.

The script runs with a PATH that holds only fake `apt-get`, `id` and `npm` commands and the few real tools
it needs, and with a fake Chromium path, so the real system is never touched. The fake apt-get behaves as
Debian's does on a machine with NodeSource's Node.js: asking for `npm` while an npm is on PATH fails with
"held broken packages" (that conflict once made `make test` exit 2 on every fresh machine).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tools" / "browser-deps.sh"
PACKAGES = ["mathjax@3.2.2", "requirejs@2.3.4", "@jupyter-widgets/html-manager@1.0.6"]
REAL_TOOLS = ("mkdir", "rm", "touch", "grep", "tail", "cat", "chmod", "cp")

FAKE_ID = """#!/bin/sh
[ "$1" = -u ] && echo "$FAKE_UID"
"""
FAKE_NPM = """#!/bin/sh
echo "npm $*" >> "$CALLS"
[ -n "$FAKE_NPM_FAIL" ] && { echo "npm ERR! network" >&2; exit 1; }
exit 0
"""
FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> "$CALLS"
[ "$1" = update ] && exit 0
[ -n "$FAKE_APT_FAIL" ] && { echo "E: Unable to correct problems, you have held broken packages."; exit 100; }
for pkg in "$@"; do
  case "$pkg" in
    npm) if command -v npm >/dev/null 2>&1; then
           echo " npm : Depends: node-gyp but it is not going to be installed"
           echo "E: Unable to correct problems, you have held broken packages."; exit 100
         fi ;;
  esac
done
for pkg in "$@"; do
  case "$pkg" in
    chromium) printf '#!/bin/sh\\n' > "$BROWSER_DEPS_CHROMIUM"; chmod +x "$BROWSER_DEPS_CHROMIUM" ;;
    npm) cp "$FAKE_NPM_SOURCE" "$FAKEBIN/npm"; chmod +x "$FAKEBIN/npm" ;;
  esac
done
"""


class Machine:
    """A fake machine: a bin folder on PATH, a Chromium path, and a log of the commands called."""

    def __init__(self, root: Path, *, chromium: bool, npm: bool, uid: int = 0, apt: bool = True) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.chromium = root / "usr-bin-chromium"
        self.calls = root / "calls.log"
        self.calls.touch()
        self.js = root / "venv" / "js"
        for tool in REAL_TOOLS:
            (self.bin / tool).symlink_to(shutil.which(tool))
        self._write("id", FAKE_ID)
        npm_source = root / "npm.sh"
        npm_source.write_text(FAKE_NPM)
        self.npm_source = npm_source
        if npm:
            self._write("npm", FAKE_NPM)
        if apt:
            self._write("apt-get", FAKE_APT)
        if chromium:
            self.chromium.write_text("#!/bin/sh\n")
            self.chromium.chmod(0o755)
        self.uid = uid

    def _write(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def run(self, **env: str) -> subprocess.CompletedProcess:
        environ = {
            "PATH": str(self.bin),
            "CALLS": str(self.calls),
            "FAKE_UID": str(self.uid),
            "FAKEBIN": str(self.bin),
            "FAKE_NPM_SOURCE": str(self.npm_source),
            "BROWSER_DEPS_CHROMIUM": str(self.chromium),
            **env,
        }
        return subprocess.run(
            [shutil.which("bash"), str(SCRIPT), str(self.js), *PACKAGES],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def apt_installs(self) -> list[list[str]]:
        """The package lists of every `apt-get install` call, in order."""
        out = []
        for line in self.calls.read_text().splitlines():
            words = line.split()
            if words[:2] == ["apt-get", "install"]:
                out.append([w for w in words[2:] if not w.startswith("-")])
        return out

    def npm_installs(self) -> list[str]:
        return [line for line in self.calls.read_text().splitlines() if line.startswith("npm install")]

    @property
    def problem(self) -> str:
        path = self.js / "setup-problem.txt"
        return path.read_text() if path.exists() else ""

    @property
    def complete(self) -> bool:
        return (self.js / ".installed").exists()


@pytest.fixture
def machine(tmp_path):
    return lambda **kw: Machine(tmp_path, **kw)


@pytest.mark.parametrize(
    "chromium, npm, expected",
    [
        (False, True, ["chromium"]),  # NodeSource's npm is there: never ask apt for Debian's npm
        (True, False, ["npm"]),
        (False, False, ["chromium", "npm"]),
        (True, True, None),  # nothing missing: apt-get is not called at all
    ],
)
def test_installs_only_what_is_missing(machine, chromium, npm, expected):
    m = machine(chromium=chromium, npm=npm)
    result = m.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert m.apt_installs() == ([expected] if expected else [])
    assert len(m.npm_installs()) == 1 and all(p in m.npm_installs()[0] for p in PACKAGES)
    assert m.complete and m.problem == "", result.stdout


def test_not_root_installs_nothing_says_why_and_still_gets_the_npm_packages(machine):
    m = machine(chromium=False, npm=True, uid=1000)
    result = m.run()
    assert result.returncode == 0
    assert m.apt_installs() == []
    lines = [line for line in result.stdout.splitlines() if "chromium" in line]
    assert lines and "root" in lines[0], result.stdout
    assert "apt-get install chromium" in m.problem
    assert len(m.npm_installs()) == 1
    assert not m.complete


def test_a_failing_apt_get_is_reported_in_one_line_and_does_not_fail_make(machine):
    m = machine(chromium=False, npm=True)
    result = m.run(FAKE_APT_FAIL="1")
    assert result.returncode == 0
    problem_lines = [line for line in result.stdout.splitlines() if "failed" in line]
    assert len(problem_lines) == 1 and "held broken packages" in problem_lines[0], result.stdout
    assert "held broken packages" in m.problem
    assert len(m.npm_installs()) == 1, "the npm packages are still installed"
    assert not m.complete


def test_no_apt_get_and_no_npm_says_so(machine):
    m = machine(chromium=False, npm=False, apt=False)
    result = m.run()
    assert result.returncode == 0
    assert "no apt-get" in m.problem and "chromium npm" in m.problem
    assert m.npm_installs() == [] and not m.complete


def test_a_failing_npm_install_is_recorded(machine):
    m = machine(chromium=True, npm=True)
    result = m.run(FAKE_NPM_FAIL="1")
    assert result.returncode == 0
    assert "npm install" in m.problem and not m.complete


def test_a_later_successful_run_clears_the_recorded_problem(machine):
    m = machine(chromium=True, npm=True)
    m.run(FAKE_NPM_FAIL="1")
    assert m.problem
    m.run()
    assert m.problem == "" and m.complete


def test_the_readme_and_the_makefile_name_the_same_npm_packages():
    makefile = (REPO_ROOT / "Makefile").read_text()
    listed = re.search(r"^NPM_PACKAGES\s*:=\s*(.+)$", makefile, re.M).group(1).split()
    assert listed == PACKAGES
    readme = (REPO_ROOT / "README.md").read_text()
    for package in listed:
        assert package in readme, f"README.md does not say that make test installs {package}"
    assert "tools/browser-deps.sh" in makefile


def test_the_browser_test_skips_with_the_recorded_reason(tmp_path):
    """The skip message of tests/test_browser.py quotes setup-problem.txt (run in a subprocess, with a
    Chromium path that does not exist and a node_modules folder whose set-up recorded a problem)."""
    js = tmp_path / "js"
    (js / "node_modules").mkdir(parents=True)
    (js / "setup-problem.txt").write_text("apt-get install chromium failed (E: no space left)\n")
    env = {
        **os.environ,
        "GENMODELS_NODE_MODULES": str(js / "node_modules"),
        "GENMODELS_CHROMIUM": str(tmp_path / "no-chromium"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-rs",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REPO_ROOT / "tests" / "test_browser.py"),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 5, result.stdout[-2000:]  # pytest's "no test ran": the module was skipped
    assert "skipped" in result.stdout and "E: no space left" in result.stdout, result.stdout[-2000:]
