# chemtomo: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= results/demo

.PHONY: demo demo-quick test test-fast real-example bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/chemtomo demo --out $(OUT)

demo-quick: $(STAMP)
	$(VENV)/bin/chemtomo demo --quick --out results/demo-quick

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

real-example: $(STAMP)
	$(VENV)/bin/chemtomo reconstruct ../shared/data/ncem-idp-eds-tilt-series --lines Co_Ka Zn_Ka --beam-kev 80 --out results/ncem-idp

bench: $(STAMP)
	$(PY) bench/speed.py --workload A --json

clean:
	rm -rf $(VENV) results .pytest_cache
