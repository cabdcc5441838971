# noise2music: every target builds the virtual environment first, so a fresh clone needs only `make`.
#   make sample PROMPT="..."   text -> 30 s of 24 kHz music with the shipped demo checkpoints
#   make test                  the whole test suite (CPU, a few minutes)
#   make bench                 speed figures (see bench.py); never part of the tests

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

.PHONY: test bench help

help:
	@sed -n '1,/^$$/p' Makefile

# The venv is rebuilt only when a requirements file changes: the stamp file records the last install.
$(VENV)/.stamp: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp requirements-test.txt
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

venv: $(VENV)/.stamp

# Runs every test on the CPU. Budget: well under 5 minutes on 2 cores.
test: $(VENV)/.stamp-test
	$(PY) -m pytest -q tests

# Speed figures for the tiny and paper presets (bench.py); results go in README.md by hand.
bench: $(VENV)/.stamp
	$(PY) bench.py
