# Two commands for a fresh machine:
#   make run   - virtualenv + install, load Complete Journey, build features, train + register the
#                models in MLflow, precompute offers and start the offer service on localhost:3000
#   make test  - virtualenv + install, then the whole test suite (default tests, then the slow ones)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 3000
export BENTOML_DO_NOT_TRACK := true
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: install run test test-fast test-slow lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/tailor run --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" --timeout 1200
	$(BIN)/python -m pytest -m slow --timeout 3000

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -x -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_features.py --source completejourney

clean:
	rm -rf var .pytest_cache
