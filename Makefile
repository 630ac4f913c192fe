# tokenmill: `make demo` runs the whole pipeline offline; `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
INSTALLED := $(VENV)/.installed
SITE := data/sites/debian-handbook
# Stage commands (`tokenmill …`, `dvc`) come from the venv.
export PATH := $(BIN):$(PATH)
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow/mlflow.db

.PHONY: help venv site demo repro test ui prefect flow deploy serve clean

help:
	@echo "make demo     set up .venv and run the whole pipeline (dvc repro) on the offline default source"
	@echo "make test     run the test suite"
	@echo "make ui       open the MLflow UI on http://127.0.0.1:5000"
	@echo "make prefect  start a Prefect server with its UI on http://127.0.0.1:4200"
	@echo "make serve    start a local Prefect server and serve the scheduled, event-driven deployments"
	@echo "make flow     run the pipeline as a Prefect flow"
	@echo "make site     fetch the offline default site (Debian package debian-handbook)"

# The CPU wheel of torch first when there is no GPU: a bare `torch` requirement would pull a
# multi-GB CUDA build. With a GPU, pip resolves torch from pyproject.toml as usual.
$(INSTALLED): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
		$(VENV)/bin/python -m pip install -q torch==2.13.0; fi
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	@touch $@

venv: $(INSTALLED)

site: $(INSTALLED)
	$(VENV)/bin/python -m crawler.sites debian-handbook $(SITE)

demo: site
	dvc repro
	dvc push -q || echo "dvc push failed: the corpus stays in the local DVC cache"
	tokenmill summary

repro: $(INSTALLED)
	dvc repro

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest -q

ui: $(INSTALLED)
	@echo "MLflow UI on http://127.0.0.1:5000 (Ctrl-C to stop)"
	mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db --port 5000

prefect: $(INSTALLED)
	prefect server start --host 127.0.0.1

flow: site
	$(VENV)/bin/python -m flows.pipeline

deploy: $(INSTALLED)
	$(VENV)/bin/python -m flows.serve

# A local Prefect server on 127.0.0.1:4200 (UI there too) and the deployments of flows/serve.py.
serve: site
	PREFECT_LOGGING_EXTRA_LOGGERS=crawler $(VENV)/bin/python -m flows.serve --start-server

clean:
	rm -rf data/crawl data/corpus data/tokens models metrics.json samples.json
