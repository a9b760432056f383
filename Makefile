# The README's two commands: `make demo` (the main job on built-in data) and `make test`;
# `make demo-realtime` is the real-time detector's demo (tools/run_demo.sh, DEMO=realtime), `make demo-mask`
# Mask R-CNN's (DEMO=mask).
PY := .venv/bin/python

.PHONY: setup test demo demo-realtime demo-mask clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests/

demo: setup
	@bash tools/run_demo.sh

demo-realtime: setup
	@DEMO=realtime bash tools/run_demo.sh

demo-mask: setup
	@DEMO=mask bash tools/run_demo.sh

clean:
	rm -rf work_dirs outputs data/demo_shapes
