"""The package is laid out like the book, and no import points upward.

Layers, lowest first; a module may import only from its own layer or a lower one:

0. ``core``: device and seed helpers, argument checks, the user-facing error;
1. the maths and the models: ``distributions divergences vae gan autoencoder linear_gaussian gan_1d gan_mixtures gan_dynamics
   fgan conditional vqvae``;
2. ``engine``: data, batches, the training steps and loops, checkpoints (it trains the models);
3. ``metrics``: the judges (the classifier is trained with the engine);
4. the chapters' experiments: ``gradient_estimators latent_space vae_vs_gan gan_experiments``;
5. ``app``: the command line, the zoo, the widgets, benchmarks, plotting.

So a model never imports the engine, and the engine never imports the widgets. Imports inside functions
count too. The build tooling (``tools/colab.py``, ``book/_ext/sphinxext.py``) is not in the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import genmodels as gm

PACKAGE = Path(gm.__file__).resolve().parent
LAYERS = {
    "core": 0,
    "distributions": 1,
    "divergences": 1,
    "vae": 1,
    "gan": 1,
    "autoencoder": 1,
    "linear_gaussian": 1,
    "gan_1d": 1,
    "gan_mixtures": 1,
    "gan_dynamics": 1,
    "vqvae": 1,
    "conditional": 1,
    "fgan": 1,
    "engine": 2,
    "metrics": 3,
    "gradient_estimators": 4,
    "latent_space": 4,
    "vae_vs_gan": 4,
    "gan_experiments": 4,
    "app": 5,
}
TOP = {"__init__", "__main__"}  # the public API and the entry point may import anything


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        out.append((".".join(["genmodels", *parts]), path))
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "genmodels" or parts[1] in TOP:
        return None
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layout.py's LAYERS")
    return LAYERS[parts[1]]


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import of a genmodels module, relative ones resolved."""
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "genmodels"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "genmodels":
                continue
            if target == "genmodels" or target.count(".") == 1 and target.split(".")[1] in ("engine", "metrics", "app"):
                # `from genmodels import vae` or `from ..engine import loops`: each name is a module
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def test_no_import_points_upward():
    bad = []
    for module, path in _modules():
        own = _layer(module)
        if own is None:
            continue
        for line, target in _imports(module, path):
            if target.endswith(".__version__"):
                continue
            theirs = _layer(target)
            if theirs is not None and theirs > own:
                bad.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} ({module}, layer {own}) imports {target} (layer {theirs})"
                )
    assert not bad, "imports that point upward:\n" + "\n".join(bad)


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a model that imports the engine is reported."""
    fake = tmp_path / "genmodels"
    fake.mkdir()
    (fake / "vae.py").write_text("from .engine.loops import train_vae\n")
    assert _imports("genmodels.vae", fake / "vae.py") == [(1, "genmodels.engine.loops")]
    assert _layer("genmodels.engine.loops") > _layer("genmodels.vae")


def test_the_top_level_reads_like_the_book():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP)
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert set(top) | set(subpackages) == set(LAYERS), "a module was added or removed: place it in a layer"
    assert subpackages == ["app", "engine", "metrics"]
    for tool in ("colab", "sphinxext"):
        assert not list(PACKAGE.rglob(f"{tool}.py")), f"{tool}.py is build tooling and belongs outside the package"


def test_the_public_api_is_explicit_and_complete():
    assert len(gm.__all__) == len(set(gm.__all__))
    missing = [name for name in gm.__all__ if not hasattr(gm, name)]
    assert not missing, missing
    # the names the chapters use
    for name in (
        "VAE",
        "GAN",
        "train_vae",
        "train_gan",
        "vae_step",
        "gan_step",
        "load_mnist",
        "gaussian_kl",
        "generator_loss",
        "discriminator_loss",
        "frechet_classifier_distance",
        "widgets",
        "zoo",
    ):
        assert name in gm.__all__, name


@pytest.mark.parametrize("folder", ["code", "tests", "tools", "book/_ext"])
def test_no_control_characters_in_python_sources(folder):
    r"""A backslash escape in a non-raw docstring (``"\frac"``) silently becomes a control character
    (form feed + "rac"); ruff's D301 catches the cause, this the effect."""
    root = PACKAGE.parents[1] / folder
    bad = []
    for path in root.rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(ord(c) < 32 or ord(c) == 127 for c in line):
                bad.append(f"{path}:{number}")
    assert not bad, bad
