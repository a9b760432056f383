# The README's two commands: `make demo` (the main job on built-in data) and `make test`.
PY := .venv/bin/python

.PHONY: setup test demo clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests/

demo: setup
	@bash tools/run_demo.sh

clean:
	rm -rf work_dirs outputs data/demo_shapes
