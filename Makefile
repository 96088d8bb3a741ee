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
# GENMODELS_DATA (relative to this folder, or absolute) points the loaders at IDX files, e.g. the real
# MNIST test set:  make notebooks GENMODELS_DATA=../shared/data/mnist-test
# Each kernel runs in its notebook's folder and gets the path relative to that folder.
NOTEBOOKS ?= $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)
notebooks: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
	  data=$$($(PY) -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]) if sys.argv[1] else "")' "$(GENMODELS_DATA)" "$$(dirname $$nb)"); \
	  echo "executing $$nb with the full budget (GENMODELS_DATA=$$data)"; \
	  GENMODELS_DATA=$$data GENMODELS_BUDGET=full $(VENV)/bin/jupyter execute --inplace $$nb || exit 1; \
	done

clean:
	rm -rf _build
