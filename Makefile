# Two commands on a fresh machine: `make demo` and `make test`.
# Everything they need is installed here: a virtualenv in .venv with the
# Python dependencies, and (Debian) Chromium plus CJK fonts for the
# browser checks and Chinese labels in static maps, PostgreSQL + PostGIS
# for the store tests (servers are started by the tests themselves).

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

# System packages the tests need, each installed only when missing:
# Chromium (browser checks), a CJK font (Chinese in maps and PNGs),
# PostgreSQL + PostGIS (the tests start their own throwaway server, see
# tests/pg.py; the Debian package's own cluster is never used) and
# mod_spatialite (SQL functions for the GeoPackage store), and poppler-utils
# (pdftotext, pdftoppm: the evidence-pack tests read the PDFs back).
system:
	@PKGS=""; \
	command -v chromium >/dev/null 2>&1 || PKGS="$$PKGS chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || PKGS="$$PKGS fonts-noto-cjk"; \
	ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | grep -q . || PKGS="$$PKGS postgresql"; \
	ls /usr/share/postgresql/*/extension/postgis.control 2>/dev/null | grep -q . || PKGS="$$PKGS postgresql-15-postgis-3"; \
	ls /usr/lib/*/mod_spatialite.so* /usr/lib/mod_spatialite.so* 2>/dev/null | grep -q . || PKGS="$$PKGS libsqlite3-mod-spatialite"; \
	command -v pdftotext >/dev/null 2>&1 || PKGS="$$PKGS poppler-utils"; \
	if [ -n "$$PKGS" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing:$$PKGS"; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$PKGS >/dev/null; \
	fi

demo: setup system
	$(BIN)/gis demo --out layers/demo --maps maps

test: setup system
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python scripts/bench_overlay.py --parcels 1000000 --redlines 500

clean:
	rm -rf $(VENV) layers/demo maps/*.html maps/*.png maps/*.xlsx maps/*.gpkg
