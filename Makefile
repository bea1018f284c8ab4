# Two commands for a fresh machine (Python 3.11, no GPU, package registries only):
#   make run    install, then run the EM bundle's inference on its shipped sample slice
#   make test   install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch; an unpinned torch would pull a CUDA release of several GB.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
EM_BUNDLE := bundles/unet2015_em_membranes

.PHONY: install run test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,bioimageio,large]" "$(TORCH_SPEC)"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m monai.bundle run --config_file $(EM_BUNDLE)/configs/inference.json --bundle_root $(EM_BUNDLE) \
		--output_dir outputs/sample

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) outputs
