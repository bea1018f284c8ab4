# Two commands for a fresh machine (Python 3.11, no GPU, package registries only):
#   make run    install, then segment the shipped sample slice and write the result
#   make test   install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch; an unpinned torch would pull a CUDA release of several GB.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install run test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m monai_unet2015 segment --output outputs/sample

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) outputs
