# Set-up and entry points. `make report` and `make test` each install what they need
# (once: a stamp file records it) from the pinned, hashed envs/requirements.lock.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cat envs/requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
export PATH := $(abspath $(VENV))/bin:$(PATH)
CORES ?= 8

.PHONY: setup report test test-slow lint lock clean-results

setup: $(STAMP)  ## only install the environment

report: $(STAMP)  ## the main job on the embedded default: reports/all.pdf
	snakemake --cores $(CORES) reports/all.pdf

test: $(STAMP)  ## the default test run: everything but the slow end-to-end and SLURM runs
	pytest -m "not slow" --durations=30

test-slow: $(STAMP)  ## the slow tests: the default DAG end to end, rules as SLURM jobs
	pytest -m slow

lint: $(STAMP)
	ruff check .
	ruff format --check .
	snakemake --lint

$(STAMP): envs/requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r envs/requirements.lock
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	rm -f $(VENV)/.installed-*
	touch $@

lock:  ## re-pin envs/requirements.lock and envs/constraints.txt from envs/requirements.in
	uv pip compile envs/requirements.in --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --find-links /opt/wheels --emit-find-links \
	  --no-header -o envs/requirements.lock
	grep -E '^[A-Za-z0-9_.-]+==' envs/requirements.lock | sed -e 's/ .*//' -e 's/+cpu//' \
	  > envs/constraints.txt

clean-results:
	rm -rf results logs benchmarks/out reports/all.pdf reports/audit.ipynb .snakemake
