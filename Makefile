# Two commands on a fresh machine: `make demo` and `make test`.
# Everything they need is installed here: a virtualenv in .venv with the
# Python dependencies, and (Debian) Chromium plus CJK fonts for the
# browser checks and Chinese labels in static maps.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test setup system bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Chromium (browser checks) and a CJK font (Chinese in maps and PNGs).
system:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

demo: setup system
	$(BIN)/gis demo --out layers/demo --maps maps

test: setup system
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python scripts/bench_overlay.py --parcels 1000000 --redlines 500

clean:
	rm -rf $(VENV) layers/demo maps/*.html maps/*.png maps/*.xlsx maps/*.gpkg
