# Two commands on a fresh clone:  `make demo`  and  `make test`.
# Both create .venv and install everything they need from the package registries.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test postgres browser screenshots lint typecheck pytest bench soak docs clean

PLUGINS := plugins/turnout-langgraph plugins/turnout-posthog plugins/turnout-openfeature

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/turnout demo

test: $(STAMP) postgres browser lint typecheck pytest

# The PostgreSQL tests start a throwaway server; this installs Debian's `postgresql` first
# if it is missing (needs root). Without it they skip, or fail when TURNOUT_REQUIRE_POSTGRES=1.
postgres: $(STAMP)
	-$(BIN)/python tests/pg_server.py --install-only

# The dashboard's browser tests drive Debian's headless `chromium`; this installs it first if it
# is missing (needs root). Without it they skip, or fail when TURNOUT_REQUIRE_BROWSER=1.
browser: $(STAMP)
	-$(BIN)/python tests/browser.py --install-only

# docs/img/dashboard-*.png, taken by the browser tests.
screenshots: browser
	TURNOUT_SCREENSHOTS=docs/img $(BIN)/python -m pytest -W error tests/admin_ui -q -k screenshot

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples plugins
	$(BIN)/ruff format --check src tests bench examples plugins

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -W error --strict-markers

# docs/config-reference.md is generated from the configuration models (a test checks it).
docs: $(STAMP)
	$(BIN)/python -m turnout.config_reference

# Every script at its quick size; the five headline ratios, each against its target, come last.
BENCH_RESULTS ?= .bench-results
bench: $(STAMP)
	rm -rf $(BENCH_RESULTS) && mkdir -p $(BENCH_RESULTS)
	$(BIN)/python bench/bench_e2e.py --quick --json $(BENCH_RESULTS)/e2e.json
	$(BIN)/python bench/bench_layers.py --quick
	$(BIN)/python bench/bench_decide.py --quick --json $(BENCH_RESULTS)/decide.json
	$(BIN)/python bench/bench_asgi.py --quick --json $(BENCH_RESULTS)/asgi.json
	$(BIN)/python bench/bench_openfeature.py --quick
	$(BIN)/python bench/bench_telemetry.py --quick --json $(BENCH_RESULTS)/telemetry.json
	$(BIN)/python bench/bench_metrics.py
	$(BIN)/python bench/bench_events.py --quick --json $(BENCH_RESULTS)/events.json
	$(BIN)/python bench/bench_events_pg.py --quick
	$(BIN)/python bench/bench_report.py --quick
	$(BIN)/python bench/bench_banking77.py
	$(BIN)/python bench/bench_intent.py --quick --model "$$($(BIN)/python -c 'import tempfile; print(tempfile.gettempdir())')/turnout-bench/banking77.ftz"
	$(BIN)/python bench/summary.py $(BENCH_RESULTS)

# The long reliability run: fault matrix, fuzzing, kill -9 and shutdown timings (minutes).
soak: $(STAMP)
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
