# The two commands of the README. Both create the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	touch $@

## demo: set everything up, regenerate the release, autograde the example submissions, print grades
demo: $(BIN)/.installed
	$(BIN)/course demo

## test: set everything up and run the whole test suite (what CI runs)
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

## test-fast: the suite without the slow notebook runs
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

## bench: speed figures (conv/pool vs naive vs PyTorch when installed, layers, training steps, grading)
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_conv.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_grading.py overhead

clean:
	rm -rf build $(VENV)
