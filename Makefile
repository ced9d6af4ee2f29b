# Two commands from a fresh clone (Python 3.11+ and pip are all it needs):
#   make run    every enabled dataset once, then where the data is and how to query it
#   make demo   the same against the stand-in API (no internet needed)
#   make test   the style check and the test suite (what CI runs)
#   make airflow-env   .venv-airflow, the optional Airflow integration's own environment (make test makes it)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run demo test setup airflow-env

run: setup
	$(PY) utils/first_run.py

demo: setup
	$(PY) utils/first_run.py --demo

test: setup airflow-env
	$(PY) utils/format_code.py --check
	$(PY) run_tests.py -q

setup: $(VENV)/.installed

# Made again whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) utils/install_requirements.py
	touch $@

# Airflow lives in its own environment, never in $(VENV); made again when either requirements file changes.
airflow-env: setup
	$(PY) integrations/airflow/make_env.py .venv-airflow
