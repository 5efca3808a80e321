# The two entry points that set everything up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test course bench clean system-deps

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[course,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m holepunch demo --peers 3

# The course: JupyterLab rooted at notebooks/ (lessons and solutions), opening lesson 0, with the
# venv's own kernel (JUPYTER_PREFER_ENV_PATH: a user-level "python3" kernelspec must not win).
# Extra options go in COURSE_ARGS, e.g. make course COURSE_ARGS="--no-browser --port=8890".
COURSE_ARGS ?=
course: $(STAMP)
	JUPYTER_PREFER_ENV_PATH=1 $(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(COURSE_ARGS) notebooks/00-welcome.ipynb

test: $(STAMP) system-deps
	$(PY) -m pytest -q tests notebooks --nbmake --nbmake-timeout=120

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

system-deps:
	@bash scripts/system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
