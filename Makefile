# The README's two commands: `make demo` (the main job on built-in data) and `make test`;
# `make demo-realtime` is the real-time detector's demo (tools/run_demo.sh, DEMO=realtime), `make demo-mask`
# Mask R-CNN's (DEMO=mask).
# STACK picks the MMDetection stack (tools/setup_env.sh): upstream (default, .venv/) or onedl (.venv-onedl/),
# e.g. `STACK=onedl make test`. PYTEST_ARGS narrows `make test`, e.g. PYTEST_ARGS='-m "not slow"'.
STACK ?= upstream
PY := .venv$(if $(filter-out upstream,$(STACK)),-$(STACK))/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo demo-realtime demo-mask clean

setup:
	@STACK=$(STACK) bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests/ $(PYTEST_ARGS)

demo: setup
	@PY=$(PY) bash tools/run_demo.sh

demo-realtime: setup
	@PY=$(PY) DEMO=realtime bash tools/run_demo.sh

demo-mask: setup
	@PY=$(PY) DEMO=mask bash tools/run_demo.sh

clean:
	rm -rf work_dirs outputs data/demo_shapes
