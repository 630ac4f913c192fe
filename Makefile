# tokenmill: `make demo` runs the whole pipeline offline; `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
INSTALLED := $(VENV)/.installed
PIP := $(VENV)/bin/python -m pip
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
MLFLOW_STORE := sqlite:///mlflow/mlflow.db
MLFLOW_PORT ?= 5000
SITE := data/sites/debian-handbook
# Stage commands (`tokenmill …`, `dvc`) come from the venv.
export PATH := $(BIN):$(PATH)
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow/mlflow.db

.PHONY: help venv site demo repro test test-slow ui prefect flow deploy serve clean

help:
	@echo "make demo     set up .venv and run the whole pipeline (dvc repro) on the offline default source"
	@echo "make test     run the test suite but its few slow end-to-end tests (make test-slow runs those)"
	@echo "make ui       the MLflow UI on http://127.0.0.1:5000 (same as make mlflow-server)"
	@echo "make mlflow-server  MLflow tracking server on 127.0.0.1:5000; trainings log through it while it runs"
	@echo "make prefect  start a Prefect server with its UI on http://127.0.0.1:4200"
	@echo "make serve    start a local Prefect server and serve the scheduled, event-driven deployments"
	@echo "make flow     run the pipeline as a Prefect flow"
	@echo "make finetune SFT, reward model, DPO, PPO and GRPO on the arithmetic example task (dvc repro in examples/finetune)"
	@echo "make site     fetch the offline default site (Debian package debian-handbook)"
	@echo "make pull     a teammate's clone: the pushed corpus, evaluation set, tokens, model and report"
	@echo "make status   the main pipeline's dvc status (dvc.yaml), less what a pulled clone lacks by design"
	@echo "make push     send the stage outputs (not the raw crawl) to the team's DVC remote"
	@echo "make remote URL=...  set the team's DVC remote (s3://bucket/prefix, a shared path); commit .dvc/config"

# Without a GPU, torch's CPU build goes in first: a bare `torch` requirement on Linux pulls the
# multi-GB CUDA build from PyPI. With a GPU, pip resolves torch from pyproject.toml as usual.
# PYTHONWARNINGS: setuptools' editable-install advice (a UserWarning in its build process) is no news here.
$(INSTALLED): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@if ! command -v nvidia-smi >/dev/null 2>&1; then $(MAKE) --no-print-directory cpu-torch; fi
	PYTHONWARNINGS=ignore::UserWarning $(PIP) install -q -e '.[dev]'
	@touch $@

# The CPU build of torch, from the first of: the configured index when its torch==$(TORCH_VERSION) already
# is a CPU build (a local wheel; pip reads only metadata to tell), PyTorch's CPU wheel index when it
# answers within 5 s, else the default build (with a warning).
cpu-torch:
	@if $(PIP) install --dry-run --quiet --ignore-installed --no-deps --report - torch==$(TORCH_VERSION) \
			2>/dev/null | grep -q '"version": "$(TORCH_VERSION)+cpu"'; then \
		echo "torch $(TORCH_VERSION): the CPU build from the configured package index"; \
		$(PIP) install -q torch==$(TORCH_VERSION); \
	elif $(VENV)/bin/python -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=5)" \
			2>/dev/null; then \
		echo "torch $(TORCH_VERSION): the CPU build from $(TORCH_CPU_INDEX)"; \
		$(PIP) install -q torch==$(TORCH_VERSION) --index-url $(TORCH_CPU_INDEX); \
	else \
		echo "torch $(TORCH_VERSION): $(TORCH_CPU_INDEX) not reachable; installing the default build" \
			"(on Linux from PyPI: the large CUDA one)"; \
		$(PIP) install -q torch==$(TORCH_VERSION); \
	fi

venv: $(INSTALLED)

site: $(INSTALLED)
	$(VENV)/bin/python -m crawler.sites debian-handbook $(SITE)

# Progress goes to stderr: a tqdm bar in a terminal, plain periodic lines when piped to a file.
demo: site
	dvc repro
	dvc push -q || echo "dvc push failed: the corpus stays in the local DVC cache"
	tokenmill summary

repro: $(INSTALLED)
	dvc repro

# Sharing with a team (docs/operations.md). The remote is .dvc/config's `team` (by default
# ../tokenmill-dvcstore, beside the clone); `make remote URL=...` names another, for the main pipeline and
# the fine-tuning example's DVC project (examples/finetune/.dvc/config) alike. `make pull` fetches the
# outputs of the stages that push them (python -m pipeline.team pulled): the raw crawl is never pushed.
# In a pulled clone, `dvc repro --allow-missing` reruns only what a change touches, with no crawl.
.PHONY: remote push pull status
REMOTE_NAME := team
remote: $(INSTALLED)
	@if [ -n "$(URL)" ]; then \
		dvc remote add --default --force $(REMOTE_NAME) '$(URL)' && \
		case '$(URL)' in *://*|/*) url='$(URL)';; *) url='../../$(URL)';; esac && \
		(cd $(FINETUNE) && dvc remote add --default --force $(REMOTE_NAME) "$$url") && \
		echo "the team's DVC remote is now $(URL): commit .dvc/config and $(FINETUNE)/.dvc/config" \
			"(for s3:// also pip install dvc-s3)"; \
	fi
	@dvc remote list

push: $(INSTALLED)
	dvc push

pull: $(INSTALLED)
	stages="$$($(VENV)/bin/python -m pipeline.team pulled)" && dvc pull $$stages

status: $(INSTALLED)
	@$(VENV)/bin/python -m pipeline.team status

# After `make demo` (or `make pull`): the fine-tuning stages of examples/finetune/dvc.yaml on models/gpt.
# examples/finetune is a DVC project of its own (the root's `dvc status` stays the main pipeline's), with
# the root's cache and team remote.
FINETUNE := examples/finetune
.PHONY: finetune
finetune: $(INSTALLED)
	cd $(FINETUNE) && dvc repro
	cd $(FINETUNE) && (dvc push -q || echo "dvc push failed: the fine-tuned models stay in the local DVC cache")

# `make test`: everything but the few end-to-end tests marked slow (under 10 minutes on 2 cores);
# `make test-slow`: those (served Prefect deployments, sweeps, whole-pipeline DVC and flow runs,
# 2-process FSDP, a real Dask scheduler). CI runs both.
test: $(INSTALLED)
	$(VENV)/bin/python -m pytest -q -m "not slow"

test-slow: $(INSTALLED)
	$(VENV)/bin/python -m pytest -q -m slow

report: $(INSTALLED)
	tokenmill report

# One light process in front of the local store (one worker; no GenAI job runners, which would start
# a dozen more processes): 2 processes and about 0.5 GiB instead of 15 and 2.6 GiB. While it runs,
# mlflow/server.url names it and trainings log through it (pipeline/tracking_server.py), so parallel
# runs never write the SQLite file at once.
mlflow-server: $(INSTALLED)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/python -m pipeline.tracking_server \
		--port $(MLFLOW_PORT) --store $(MLFLOW_STORE) --artifacts ./mlflow/artifacts

ui: mlflow-server

# Locked like `make serve`'s (flows/server.py): the API wants the auth string in .prefect/auth-string.
prefect: $(INSTALLED)
	PREFECT_SERVER_API_AUTH_STRING="$$($(VENV)/bin/python -m flows.server auth-string)" \
		PREFECT_SERVER_CSRF_PROTECTION_ENABLED=true $(VENV)/bin/prefect server start --host 127.0.0.1

flow: site
	$(VENV)/bin/python -m flows.pipeline

deploy: $(INSTALLED)
	$(VENV)/bin/python -m flows.serve

# A local Prefect server on 127.0.0.1:4200 (UI there too) and the deployments of flows/serve.py.
serve: site
	PREFECT_LOGGING_EXTRA_LOGGERS=crawler $(VENV)/bin/python -m flows.serve --start-server

clean:
	rm -rf data/crawl data/corpus data/tokens models runs metrics.json samples.json samples.md evaluation.json registry.json report.html
