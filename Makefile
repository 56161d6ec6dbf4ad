# Two commands on a fresh machine: `make demo` (the side-by-side comparison) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test docs setup graphviz lint bench clean

demo: setup graphviz
	$(VENV)/bin/diptych

test: setup graphviz
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

# The site (mkdocs.yml) into build/site, every lesson executed at its default sizes.
docs: setup graphviz
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev,fast,docs,export,dist]'
	touch $@

# The `dot` program renders graphs: installed with apt-get where we are root, else explained.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || \
	      echo "note: could not install Graphviz; graphs will be written as DOT source"; \
	  else \
	    echo "note: Graphviz's 'dot' is missing (graphs are written as DOT source)." \
	         "Install it with: sudo apt-get install graphviz  (or: brew install graphviz)"; \
	  fi; }

# BLAS/OpenMP threads while timing: `diptych compare`'s policy and default (0: the libraries')
THREADS ?= 1

# every row of issue 14's table, diptych and each installed peer in one run (JSON for the docs)
bench: setup
	$(VENV)/bin/diptych bench --threads $(THREADS) --json build/bench.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
