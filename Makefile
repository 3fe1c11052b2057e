# Two commands for a new machine (see README):
#   make demo   set up a runtime-only environment (.venv) and denoise samples/noisy with the bundled model
#   make test   set up the development environment (.venv-test, torch CPU build pinned) and run the whole suite
# The two environments stay apart: the demo's is what a user installs (no torch), the tests' has everything.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
TEST_VENV ?= .venv-test
TEST_BIN = $(TEST_VENV)/bin

.PHONY: demo test venv clean

$(BIN)/python:
	@echo "make: creating $(VENV) (runtime only: onnxruntime, no torch)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(TEST_BIN)/python:
	@echo "make: creating $(TEST_VENV) (the development extras)"
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_BIN)/python -m pip install --quiet --upgrade pip

demo: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cpu]'
	$(BIN)/denoise batch samples/noisy demo-out --sigma 0.1
	@echo "--- PSNR against the clean samples (same noise level, fresh synthetic noise) ---"
	$(BIN)/denoise eval samples/clean --sigma 0.1 --sigma 0.3
	@echo "denoised images are in demo-out/"

test: $(TEST_BIN)/python
	@echo "make test: installing the development extras into $(TEST_VENV) (torch 2.13.0 CPU, onnxruntime, ray, ...; several minutes the first time)"
	$(TEST_BIN)/pip install --quiet -e '.[cpu,train,eval,ray,dev]' -c constraints-ci.txt
	@echo "make test: running the suite (about 15 minutes on 2 cores; skipped tests are listed with their reasons at the end)"
	$(TEST_BIN)/python -m pytest -q -rs

clean:
	rm -rf demo-out $(VENV) $(TEST_VENV) build *.egg-info
