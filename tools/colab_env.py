"""Run chapters as a Colab reader meets them: `make test-colab` (opt-in, not part of `make test`).

What Colab has that `make test` does not: its own torch, ipywidgets 7.7, matplotlib's inline backend,
and the package installed by the setup cell with ``pip install "genmodels @ git+<repository>@<branch>"``.
This script builds that in ``.venv-colab/`` and runs three notebooks in it:

1. a virtual environment (kept between runs; ``--fresh`` builds it anew) with the newest ipywidgets 7.7.x,
   the torch of requirements.txt (the newest build that runs on a CPU here), ipykernel 6 (Colab's kernel
   line), nbclient, nbformat and matplotlib, and no torchvision: it is optional for the package (only
   downloading MNIST uses it), so the run shows the chapters need none, and with a CPU-only torch no
   torchvision on the registry imports at all;
2. the package from this repository through pip's ``git+file://`` URL, the code path of the Colab cell
   without a network. Only the committed state (HEAD) is installed: uncommitted changes are not tested;
3. a kernel spec in the environment (``--sys-prefix``) whose python is the environment's;
4. the live widgets under ipywidgets 7.7, beyond what executing a notebook reaches: every control of every
   explorer moved through its options (each move must draw a frame), the training panel's Train button
   pressed for a VAE and a GAN (one epoch on 256 digits), and static mode refused with its clear message;
5. ``book/quickstart.ipynb``, ``book/vae/vae-mnist.ipynb`` and ``book/gan/dcgan-mnist.ipynb`` executed by
   nbclient, copies in a temporary folder (the repository's notebooks are not touched), with
   ``GENMODELS_WIDGETS=live``, ``GENMODELS_BUDGET=quick``, ``GENMODELS_OFFLINE=1``, an empty model cache and
   ``MPLBACKEND=module://matplotlib_inline.backend_inline``; a cell error fails the run. One cell is appended
   to each copy: it checks, inside the kernel, that ``genmodels`` was imported from the environment (not
   from the repository), that ipywidgets is 7.7 and that the inline backend is in use.

Usage: ``python tools/colab_env.py [--fresh] [--venv DIR] [notebook ...]``; exit status 1 on any failure.
The execution step re-runs this file with the environment's python (``--execute``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("book/quickstart.ipynb", "book/vae/vae-mnist.ipynb", "book/gan/dcgan-mnist.ipynb")
KERNEL = "genmodels-colab"
CELL_TIMEOUT_S = 1800
# Colab's ipywidgets line (the newest 7.7.x is picked) and its kernel line. Bump when Colab moves.
IPYWIDGETS = "ipywidgets~=7.7.0"
IPYKERNEL = "ipykernel>=6,<7"
# Pinned like the book's environment (requirements.txt); torch's pin there is the newest CPU-usable build.
FROM_REQUIREMENTS = ("torch", "matplotlib", "nbclient", "nbformat")
ENV = {
    "GENMODELS_WIDGETS": "live",
    "GENMODELS_BUDGET": "quick",
    "GENMODELS_OFFLINE": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}
# Appended to each executed copy: fails inside the kernel when the environment is not the one meant.
CHECK_CELL = """\
import sys, genmodels, ipywidgets, matplotlib, torch
assert genmodels.__file__.startswith(sys.prefix), f"genmodels imported from {genmodels.__file__}, not the environment"
assert ipywidgets.__version__.startswith("7.7."), ipywidgets.__version__
assert matplotlib.get_backend().endswith("backend_inline"), matplotlib.get_backend()
print(f"kernel: python {sys.version.split()[0]}, torch {torch.__version__}, ipywidgets {ipywidgets.__version__}, "
      f"genmodels {genmodels.__version__} from {genmodels.__file__}")
"""


def say(text: str) -> None:
    print(f"[test-colab] {text}", flush=True)


class Step:
    """``with Step("name"):`` prints the step, then how long it took (also when it fails)."""

    times: list = []

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        say(f"{self.name} ...")
        self.start = time.perf_counter()
        return self

    def __exit__(self, kind, value, traceback):
        seconds = time.perf_counter() - self.start
        Step.times.append((self.name, seconds, kind is None))
        say(f"{self.name}: {'done' if kind is None else 'FAILED'} in {seconds:.1f} s")
        return False


def run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], check=True, **kwargs)


def requirement_pins(names) -> list:
    """``name==version`` lines of requirements.txt for ``names``."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            pins[line.split("==")[0].strip().lower()] = line
    missing = [n for n in names if n not in pins]
    if missing:
        raise Failed(f"requirements.txt pins no {', '.join(missing)}")
    return [pins[n] for n in names]


def python_of(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def build_environment(env_dir: Path, fresh: bool) -> Path:
    """Create (or reuse) the environment with Colab's versions; returns its python."""
    wanted = [*requirement_pins(FROM_REQUIREMENTS), IPYWIDGETS, IPYKERNEL]
    stamp = env_dir / ".colab-installed"
    if fresh and env_dir.exists():
        say(f"--fresh: removing {env_dir.name}/")
        shutil.rmtree(env_dir)
    python = python_of(env_dir)
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        say(f"reusing {env_dir.name}/ (built with {' '.join(wanted)}; --fresh rebuilds it)")
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", "--quiet", *wanted])
    stamp.write_text(json.dumps(wanted))
    return python


def install_package(python: Path) -> str:
    """``pip install "genmodels @ git+file://<repo>@<HEAD's commit>"``, as the Colab cell does; returns the URL."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    branch = subprocess.run(
        ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    say(f"installing the COMMITTED state: commit {commit[:12]} (branch {branch})")
    if dirty:
        say("note: the work tree has uncommitted changes; they are NOT installed, hence not tested")
    url = f"genmodels @ git+{ROOT.as_uri()}@{commit}"
    run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "genmodels"], stderr=subprocess.DEVNULL)
    run([python, "-m", "pip", "install", "--quiet", url])
    return url


def versions(python: Path) -> dict:
    code = (
        "import importlib.util, json, sys, torch, ipywidgets, matplotlib, genmodels\n"
        "print(json.dumps({'python': sys.version.split()[0], 'torch': torch.__version__,\n"
        "  'ipywidgets': ipywidgets.__version__, 'matplotlib': matplotlib.__version__,\n"
        "  'genmodels': genmodels.__version__, 'genmodels_file': genmodels.__file__,\n"
        "  'torchvision': importlib.util.find_spec('torchvision') is not None}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(python), "-c", code], cwd=tempfile.gettempdir(), env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def exercise_widgets() -> int:
    """Run inside the environment: what a reader's clicks do to the live widgets; 0 when all works."""
    import genmodels as gm

    test = gm.load_mnist("test", verbose=False)
    train = gm.load_mnist("train", verbose=False)
    few = gm.ImageSet(train.images[:256], train.labels[:256], "MNIST", "train", "256 training digits", True)
    builders = {
        "VAE latent-size explorer": lambda: gm.widgets.latent_size_explorer("vae", test_data=test, mode="live"),
        "GAN noise-size explorer": lambda: gm.widgets.latent_size_explorer("gan", test_data=test, mode="live"),
        "2-D VAE latent navigator": lambda: gm.widgets.latent_navigator(test_data=test, mode="live"),
        "VAE interpolation": lambda: gm.widgets.interpolation_explorer("vae", test_data=test, mode="live"),
        "GAN interpolation": lambda: gm.widgets.interpolation_explorer("gan", test_data=test, mode="live"),
    }
    for title, build in builders.items():
        explorer = build()
        for c in explorer.specs:
            control, n = explorer.controls[c.name], len(c.options)
            before = explorer.frames_rendered
            for _ in range(n):
                control.index = (control.index + 1) % n
            drawn = explorer.frames_rendered - before
            assert drawn == (n if n > 1 else 0), f"{title}: {n} moves of {c.name} drew {drawn} frames"
        say(f"{title}: every control moved through its options, {explorer.frames_rendered} frames drawn")
    panel = gm.widgets.training_panel(data=few, test_data=test, mode="live", device="cpu")
    status, picture = panel.widget.children[-2], panel.widget.children[-1]
    for family in ("vae", "non_saturating"):
        panel.controls["family"].value, panel.controls["epochs"].value = family, 1
        panel.history, picture.value = None, b""
        panel.controls["train"].click()
        assert panel.history is not None and picture.value and "1 epochs" in status.value, status.value
        say(f"training panel, {family}: Train pressed -> {status.value}")
    try:
        gm.widgets.latent_size_explorer("vae", test_data=test, mode="static")
    except ImportError as err:
        assert "ipywidgets 8" in str(err), err
        say(f"static mode refused as it should be: {err}")
    else:
        raise AssertionError("static mode built without ipywidgets 8's Stack")
    return 0


def execute(notebooks, kernel: str, workdir: Path) -> int:
    """Run inside the environment: execute copies of ``notebooks`` under ``workdir``; 0 when all pass."""
    import nbclient
    import nbformat
    from nbclient.exceptions import CellExecutionError

    failed = 0
    for relative in notebooks:
        source = ROOT / relative
        copy = workdir / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        nb = nbformat.read(copy, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
        start = time.perf_counter()
        say(f"executing a copy of {relative} ...")
        try:
            nbclient.NotebookClient(
                nb, kernel_name=kernel, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(copy.parent)}}
            ).execute()
        except CellExecutionError as err:
            failed += 1
            say(f"{relative}: FAILED after {time.perf_counter() - start:.1f} s\n{err}")
            continue
        finally:
            nbformat.write(nb, copy)
        widgets = len(
            nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
        )
        last = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", [])).strip()
        say(
            f"{relative}: {len(nb.cells)} cells ran without error in {time.perf_counter() - start:.1f} s "
            f"({widgets} widget models); {last}"
        )
    return 1 if failed else 0


class Failed(Exception):
    """A step that did not pass; its message is printed."""


def in_environment(python: Path, args, cwd: str, env: dict) -> None:
    """Run this file's in-environment step ``args`` with the environment's python."""
    if subprocess.run([str(python), __file__, *args], cwd=cwd, env=env).returncode:
        raise Failed(f"the step {' '.join(args[:1])} failed (see above)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", default=list(NOTEBOOKS), help="relative to the repository root")
    parser.add_argument("--venv", default=str(ROOT / ".venv-colab"), help="the environment (default .venv-colab)")
    parser.add_argument("--fresh", action="store_true", help="delete and rebuild the environment first")
    parser.add_argument("--execute", metavar="WORKDIR", help=argparse.SUPPRESS)  # in-environment steps
    parser.add_argument("--widgets", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.widgets:
        return exercise_widgets()
    if args.execute:
        return execute(args.notebooks, KERNEL, Path(args.execute))

    total = time.perf_counter()
    env_dir = Path(args.venv).resolve()
    try:
        with Step(
            f"environment {env_dir.name}/ ({IPYWIDGETS}, {IPYKERNEL}, "
            f"{' '.join(requirement_pins(FROM_REQUIREMENTS))}, no torchvision)"
        ):
            python = build_environment(env_dir, args.fresh)
        with Step("install genmodels through pip's git+file:// URL (as the Colab setup cell does)"):
            url = install_package(python)
            say(f'pip install "{url}"')
        with Step(f"register the kernel {KERNEL!r} in the environment"):
            run(
                [
                    python,
                    "-m",
                    "ipykernel",
                    "install",
                    "--sys-prefix",
                    "--name",
                    KERNEL,
                    "--display-name",
                    "Python (genmodels, Colab-like)",
                ],
                stdout=subprocess.DEVNULL,
            )
        found = versions(python)
        say(
            f"versions: python {found['python']}, torch {found['torch']}, ipywidgets {found['ipywidgets']}, "
            f"matplotlib {found['matplotlib']}, genmodels {found['genmodels']} "
            f"(from {Path(found['genmodels_file']).parent})"
        )
        if found["torchvision"]:
            raise Failed("torchvision is installed in the environment; the Colab-like run must go without it")
        if not found["ipywidgets"].startswith("7.7."):
            raise Failed(f"ipywidgets {found['ipywidgets']} in the environment, not 7.7.x")
        with tempfile.TemporaryDirectory(prefix="genmodels-colab-") as tmp:
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GENMODELS_DATA")}
            env.update(ENV, GENMODELS_CACHE=str(Path(tmp) / "cache"))
            say("environment: " + " ".join(f"{k}={v}" for k, v in ENV.items()) + " GENMODELS_CACHE=<empty temp folder>")
            with Step("move every control of the live widgets, press Train (ipywidgets 7.7)"):
                in_environment(python, ["--widgets"], tmp, env)
            with Step(f"execute {len(args.notebooks)} notebooks"):
                in_environment(python, ["--execute", tmp, *args.notebooks], tmp, env)
    except (Failed, subprocess.CalledProcessError) as err:
        say(f"FAILED after {time.perf_counter() - total:.0f} s: {err}")
        return 1
    for name, seconds, _ in Step.times:
        say(f"  {seconds:7.1f} s  {name}")
    say(f"passed in {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
