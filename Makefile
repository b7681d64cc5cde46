# Agent L2: every command sets itself up first from the project's own files.
#   make demo    the main job on a local anvil chain
#   make test    the whole test suite
#   make bench   gas and speed benchmarks

SHELL := /bin/bash
VENV  := .venv
STAMP_PY  := $(VENV)/.installed
STAMP_NPM := node_modules/.installed

# Tools the project installs: ape and friends in .venv, anvil and solc in node_modules;
# py-solc-x finds our solc bridge (tools/solcx) through SOLCX_BINARY_PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solcx
# pydantic-settings warns about a field of ape-solidity's config on every start; it is harmless.
export PYTHONWARNINGS := ignore:::pydantic_settings.sources.utils

.PHONY: setup demo test lint bench deploy clean

setup: $(STAMP_PY) $(STAMP_NPM)

$(STAMP_PY): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(STAMP_NPM): package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	ape run bootstrap --verbosity WARNING

deploy: setup
	ape run deploy

test: setup
	ruff check offchain scripts tests bench
	ape test tests

lint: setup
	ruff check offchain scripts tests bench
	ruff format --check offchain scripts tests bench

bench: setup
	python bench/erc8004_gas.py
	python bench/x402_settlement.py
	python bench/escrow_gas.py
	python bench/blockstm.py
	python bench/rollup_gas.py
	python bench/sequencer_throughput.py
	python bench/dispute_gas.py

clean:
	rm -rf .build $(VENV) node_modules
