# Every install step lives here: a fresh machine needs only python3.11, node/npm and this file.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench lint contracts node-deps clean browser native

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP) node-deps browser native

# The multi-buffer keccak-256 (native/keccak): bulk chunk hashing, loaded with ctypes by
# state_machine/keccak_native.py. Optional: without a C compiler the same digests come from
# pycryptodome / pysha3 (slower), so a missing gcc only prints why.
CC ?= cc
NATIVE_LIB := native/build/libflockkeccak.so
NATIVE_SRC := $(wildcard native/keccak/*.c native/keccak/*.inc)

native: $(NATIVE_LIB)

$(NATIVE_LIB): $(NATIVE_SRC)
	@mkdir -p native/build
	@$(CC) -O3 -fPIC -shared -o $@.tmp native/keccak/keccak_multi.c && mv $@.tmp $@ \
		|| { rm -f $@.tmp; echo 'native keccak not built (no C compiler?): slower pure-Python hashing'; }

# Debian chromium for the explorer's browser tests (Playwright drives it; its own browser
# download is not used). Needs root and apt; elsewhere the browser tests skip and say why.
browser:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
		&& (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) \
		|| echo 'chromium not installed (needs root + apt): browser tests will skip'; }

node_modules/.installed: package.json
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --silent; else npm install --no-audit --no-fund --silent; fi
	touch node_modules/.installed

node-deps: $(if $(wildcard package.json),node_modules/.installed,)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/flockchain demo $(DEMO_ARGS)

bench: install
	$(BIN)/python bench/krum.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/efficacy.py --quick  # the full grid (no flag) takes hours
	$(BIN)/python -m pytest -q -s tests/contracts/test_gas.py -p no:warnings

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/check_sizes.py

contracts: node-deps
	node contracts/build.mjs

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis native/build
