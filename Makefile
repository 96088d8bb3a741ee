# Two commands do all the set-up on a fresh machine:
#   make book   creates/reuses .venv, installs requirements.txt and the package, builds _build/html
#   make test   the same set-up, then lint (ruff), the unit tests (tests/) and the notebooks (pytest --nbval book/)
#               (the set-up of `make test` also runs `make browser-deps`, for tests/test_browser.py:
#               Debian's chromium and/or npm when missing and root, then three npm packages)
#               (and `make data-deps`: Debian's dataset-fashion-mnist when missing and root)
# Override the interpreter with `make PYTHON=python3.12 test`.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install browser-deps data-deps book figures lint format test test-fast test-unit test-notebooks test-colab notebooks clean

install: $(STAMP)

# Reinstall only when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# tests/test_browser.py drives Debian's headless Chromium (/usr/bin/chromium) through Playwright (from
# requirements.txt; never `playwright install`, which downloads a browser). The pages load MathJax,
# RequireJS and the widget manager from CDNs; the test serves them from these npm packages instead.
# The versions are those the built pages ask for (Sphinx: mathjax@3; myst-nb 1.4: require.js 2.3.4,
# @jupyter-widgets/html-manager@1.0.6); the test fails and names the URL if they drift apart.
JS       := $(VENV)/js
JS_STAMP := $(JS)/.installed
NPM_PACKAGES := mathjax@3.2.2 requirejs@2.3.4 @jupyter-widgets/html-manager@1.0.6
browser-deps: $(JS_STAMP)

# tools/browser-deps.sh installs only what is missing (Chromium alone where npm exists, npm alone where
# Chromium exists, with apt-get as root), then the npm packages. It never fails: what it cannot do it says in
# one line and writes to $(JS)/setup-problem.txt, and tests/test_browser.py is skipped with that reason.
$(JS_STAMP): Makefile tools/browser-deps.sh
	@bash tools/browser-deps.sh $(JS) $(NPM_PACKAGES)

# Debian's dataset-fashion-mnist, for the Fashion-MNIST test of tests/test_data.py: tools/data-deps.sh installs it
# with apt-get when its files are missing and this runs as root. Instant once the files are there; it never fails,
# and what it cannot do it says in one line and writes to $(VENV)/data-deps-problem.txt (that test is then skipped).
data-deps:
	@bash tools/data-deps.sh $(VENV)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "Open _build/html/index.html"

# The schematics in book/figures/ (the VAE's graph, the GAN's loop, the two directions of the KL), drawn by
# genmodels.app.schematics. Run it after changing the drawing code and commit the SVG files:
# tests/test_schematics.py fails while they differ from what the code draws.
figures: $(STAMP)
	$(PY) tools/make_figures.py

test: lint test-unit test-notebooks

# ruff (pinned in requirements.txt, configured in pyproject.toml): lint rules, including the ones that catch a
# LaTeX backslash turned into a control character, and the formatter's check. `make format` applies both fixes.
LINTED := code tests tools book/_ext
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix $(LINTED)
	$(VENV)/bin/ruff format $(LINTED)

# The fast part, for a contributor: no book build, no browser, nothing marked slow (about a minute).
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow and not book and not browser"

test-unit: $(STAMP) $(JS_STAMP) data-deps
	GENMODELS_NODE_MODULES=$(abspath $(JS))/node_modules $(PY) -m pytest tests

test-notebooks: $(STAMP)
	$(PY) -m pytest --nbval --nbval-current-env book --ignore=_build -p no:cacheprovider

# Opt-in, not part of `make test` (minutes, and several GB for the environment): the chapters as a Colab
# reader meets them. tools/colab_env.py builds .venv-colab/ (ipywidgets 7.7.x, ipykernel 6, requirements.txt's
# torch, no torchvision), pip-installs the package from this repository's COMMITTED state through a
# git+file:// URL (the Colab setup cell's code path), and executes copies of the quickstart, vae-mnist and
# dcgan-mnist with live widgets and the quick budget. `make test-colab FRESH=1` rebuilds the environment.
test-colab:
	$(PYTHON) tools/colab_env.py $(if $(FRESH),--fresh)

# Re-execute the chapters with the full budget and store their outputs (and widget state) in place; the
# widgets are built static (GENMODELS_WIDGETS=static): every picture precomputed, so the HTML book needs no kernel.
# GENMODELS_DATA (relative to this folder, or absolute) points the loaders at IDX files, e.g. the full
# MNIST (the published run):  make notebooks GENMODELS_DATA=path/to/mnist
# Each kernel runs in its notebook's folder and gets the path relative to that folder. Then the appendix of run
# records (book/appendix/_run-records.md) is rewritten from the records the chapters stored.
NOTEBOOKS ?= $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)
notebooks: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
	  data=$$($(PY) -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]) if sys.argv[1] else "")' "$(GENMODELS_DATA)" "$$(dirname $$nb)"); \
	  echo "executing $$nb with the full budget (GENMODELS_DATA=$$data)"; \
	  GENMODELS_DATA=$$data GENMODELS_BUDGET=full GENMODELS_WIDGETS=static $(VENV)/bin/jupyter execute --inplace $$nb || exit 1; \
	done
	$(PY) tools/run_records.py

clean:
	rm -rf _build
