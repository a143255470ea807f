# `make run`: the POM server on embedded defaults, with a demo.  `make test`: every test.
# Each target creates or refreshes the virtual environment first, so it is the only command.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	POM_CLOCK_SCALE=$${POM_CLOCK_SCALE:-300} POM_VOICE_BRIDGE_WAIT_S=$${POM_VOICE_BRIDGE_WAIT_S:-60} $(BIN)/pom run

# Unit tests first, in a session of their own (there Ray cannot be imported) on every core
# (pytest-xdist), then the rest.
test: $(STAMP)
	$(BIN)/pytest -q -n auto tests/unit
	$(BIN)/pytest -q --durations=25 tests --ignore=tests/unit

unit: $(STAMP)
	$(BIN)/pytest -q -n auto tests/unit

bench: $(STAMP)
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/pacing.py

clean:
	rm -rf $(VENV) .pom-data
