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
	$(VENV)/bin/chemtomo reconstruct ../shared/data/ncem-idp-eds-tilt-series --lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La --line-method fit --elements O Mg Si Fe Pt Ga Al Na S C Cu N --mask otsu --compare-tomviz ../shared/data/ncem-idp-eds-tilt-series/TomVizAlignments.json --tomviz-angles=-50:50:5 --out results/ncem-idp

bench: $(STAMP)
	$(PY) bench/speed.py --workload A --json

clean:
	rm -rf $(VENV) results .pytest_cache
