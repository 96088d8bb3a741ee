# Two commands do all the set-up on a fresh machine:
#   make book   creates/reuses .venv, installs requirements.txt and the package, builds _build/html
#   make test   the same set-up, then the unit tests (tests/) and the notebooks (pytest --nbval book/)
# Override the interpreter with `make PYTHON=python3.12 test`.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install book test test-unit test-notebooks notebooks clean

install: $(STAMP)

# Reinstall only when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "Open _build/html/index.html"

test: test-unit test-notebooks

test-unit: $(STAMP)
	$(PY) -m pytest tests

test-notebooks: $(STAMP)
	$(PY) -m pytest --nbval --nbval-current-env book --ignore=_build -p no:cacheprovider

# Re-execute the chapters with the full budget and store their outputs (and widget state) in place.
# Point GENMODELS_DATA at a folder of MNIST IDX files to evaluate on the real test set. The kernel runs in
# the notebook's folder (book/), so give an absolute path or one relative to book/, e.g. with a folder
# `shared` next to the repository:  make notebooks GENMODELS_DATA=../../shared/data/mnist-test
NOTEBOOKS ?= $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)
notebooks: $(STAMP)
	GENMODELS_BUDGET=full $(VENV)/bin/jupyter execute --inplace $(NOTEBOOKS)

clean:
	rm -rf _build
