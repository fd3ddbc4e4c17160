# Community Pulse — the two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
AIRFLOW_PORT ?= 8080

PULSE_WAREHOUSE ?= $(CURDIR)/data/warehouse.duckdb
PULSE_SERVING ?= $(CURDIR)/data/serving.duckdb
# The environment of the demo's Airflow and pulse commands (the tests set up their own).
RUN_ENV := AIRFLOW_HOME=$(CURDIR)/airflow_home AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__PARALLELISM=4 AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING \
	PULSE_WAREHOUSE=$(PULSE_WAREHOUSE) PULSE_SERVING=$(PULSE_SERVING) HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: setup demo pipeline dashboards airflow test bench airflow-init clean

setup: $(STAMP)  ## create .venv and install the locked dependencies (quick when already done)

$(STAMP): requirements.lock pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

airflow-init: setup  ## migrate Airflow's metadata DB and create the one-slot warehouse pool
	$(RUN_ENV) $(BIN)/airflow db migrate > /dev/null
	$(RUN_ENV) $(BIN)/airflow pools set pulse_warehouse 1 "DuckDB warehouse: one writer at a time" > /dev/null

pipeline: airflow-init  ## run the Airflow DAG community_pipeline end to end on the demo community
	$(RUN_ENV) $(BIN)/airflow dags test community_pipeline
	$(RUN_ENV) $(BIN)/pulse runs --limit 3

dashboards: setup  ## serve the Streamlit dashboards on the published snapshot (creates the first admin account if none exists and prints its password once)
	$(RUN_ENV) $(BIN)/pulse review ensure-admin
	$(RUN_ENV) $(BIN)/pulse dashboards --port $(PORT)

airflow: setup  ## run Airflow (standalone: UI, REST API, scheduler) with this project's DAGs; Ctrl+C stops it
	$(RUN_ENV) $(BIN)/pulse airflow --port $(AIRFLOW_PORT)

.PHONY: cluster cluster-down
WORKERS ?= 2
cluster: setup  ## start a CeleryExecutor cluster (Redis, PostgreSQL metadata DB, WORKERS Celery workers) under ./cluster; README "Running on a cluster"
	$(RUN_ENV) $(BIN)/pulse cluster up --workers $(WORKERS) --port $(AIRFLOW_PORT)

cluster-down:  ## stop everything `make cluster` started, in order
	$(RUN_ENV) $(BIN)/pulse cluster down

demo: pipeline dashboards  ## set up, run the DAG on the demo community, start the dashboards

test: setup  ## set up and run the whole test suite (starts the local PostgreSQL server via .ci/postgres)
	PULSE_TEST_POSTGRES_URL=$$(bash .ci/postgres) $(BIN)/python -m pytest

.PHONY: model
MODELS ?= $(CURDIR)/data/models
TOXICITY ?= $(firstword $(wildcard ../shared/data/toxicity data/shared/toxicity))
model: setup  ## train the recommended community model (about 45 min on 2 cores) and promote it: `auto` then scores with it
	@test -n "$(TOXICITY)" || { echo "no toxicity data: run 'make data' (or TOXICITY=DIR)"; exit 2; }
	$(RUN_ENV) nice -n 10 $(BIN)/pulse moderation train --out $(MODELS)/candidates/make-model \
	  --data $(TOXICITY)/davidson/labeled_data.csv --data $(TOXICITY)/olid_train/olid-training-v1.0.tsv \
	  --data $(TOXICITY)/kaggle_insults/train.csv
	$(RUN_ENV) $(BIN)/pulse moderation promote $(MODELS)/candidates/make-model --models-dir $(MODELS) --actor make-model

.PHONY: lint
lint: setup  ## ruff: the lint rules and the formatting (settings in pyproject.toml; tests/test_lint.py runs the same)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup  ## run every benchmark; writes BENCHMARKS.md and benchmarks/results/latest.json
	$(BIN)/python -m benchmarks.run

.PHONY: data
data:  ## fetch the full data sets (pinned sha256) into data/shared/ for the full_data tests and the benchmarks; MIRROR=DIR copies from a local folder first
	$(PY) scripts/fetch_data.py $(if $(MIRROR),--mirror $(MIRROR))

clean:  ## remove generated state (venv, warehouse, Airflow home)
	rm -rf $(VENV) data airflow_home
