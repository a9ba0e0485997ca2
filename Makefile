# The README's two commands: `make run` (set up, then the main job on data_sample/ offline)
# and `make test` (set up, then lint + the whole test suite, notebooks included).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUTPUT ?= output/sample

.PHONY: setup run test lint report bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs the pinned stack, the library (editable) and caches the offline weights.
setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m fruits_lib fetch-weights --weights offline

run: setup
	$(BIN)/python -m fruits_lib run --input data_sample --output $(OUTPUT) --weights offline --overwrite

lint:
	$(BIN)/ruff check fruits_lib fruits_emr bench tests emr

# pytest's exit 5 (no test collected) is turned into an explicit failure: no test is no proof.
test: setup lint
	$(BIN)/python -m pytest --durations=15; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no test" >&2; exit 1; fi; exit $$status

# The performance benchmark of issue 5 (~15 min on 2 cores): bench/results.json and bench/benchmark.png.
bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf output reports bench/work .pytest_cache

# Executes both notebooks (02_emr in local emulation) and renders them to HTML in reports/ (ignored by git).
report: setup
	$(BIN)/python -m fruits_lib.report
