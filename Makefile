.PHONY: demo test bench
demo:   ## install into .venv, run record -> curate -> augment -> export on the simulator, then serve the dashboard
	bash scripts/demo.sh $(ARGS)
test:   ## install into .venv, prepare the lerobot oracle, run every test
	bash scripts/test.sh
bench:  ## print the benchmark tables
	bash scripts/bootstrap.sh && .venv/bin/python benchmarks/bench_store.py && .venv/bin/python benchmarks/bench_lerobot_export.py && .venv/bin/python benchmarks/bench_recorder.py && .venv/bin/python benchmarks/bench_sim.py && .venv/bin/python benchmarks/bench_curation.py && .venv/bin/python benchmarks/bench_greenscreen.py && .venv/bin/python benchmarks/bench_pointcloud.py && .venv/bin/python benchmarks/bench_dashboard.py && .venv/bin/python benchmarks/bench_catalog.py && .venv/bin/python benchmarks/bench_scaling.py && .venv/bin/python benchmarks/bench_growth.py
