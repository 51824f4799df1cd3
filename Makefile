# Two commands do all set-up on a fresh machine:
#   make demo   installs into .venv and analyses a built-in example
#   make test   installs into .venv and runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the local CPU wheel, not several GB of CUDA builds.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/convlens analyze examples/three_conv.cnn
	$(BIN)/convlens analyze examples/colour_cnn.cnn
	$(BIN)/convlens explain examples/three_conv.cnn --layer 1 --what shape
	$(BIN)/convlens analyze zoo:resnet18 --depth 1

# The browser tests drive the system's Chromium (Playwright cannot download its own here).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src/convlens
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# mypy: strict on src/convlens/core (pure Python, no torch), normal elsewhere ([tool.mypy]).
typecheck: $(STAMP)
	$(BIN)/mypy src/convlens

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
