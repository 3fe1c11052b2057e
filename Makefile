# Two commands for a new machine (see README):
#   make demo   set up a runtime-only environment and denoise samples/noisy with the bundled model
#   make test   set up the development environment (torch CPU build pinned) and run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

demo: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cpu]'
	$(BIN)/denoise batch samples/noisy demo-out --sigma 0.1
	@echo "--- PSNR against the clean samples (same noise level, fresh synthetic noise) ---"
	$(BIN)/denoise eval samples/clean --sigma 0.1 --sigma 0.3
	@echo "denoised images are in demo-out/"

test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cpu,train,eval,ray,dev]' -c constraints-ci.txt
	$(BIN)/python -m pytest -q

clean:
	rm -rf demo-out $(VENV) build *.egg-info
