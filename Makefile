# chemtomo: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= results/demo

.PHONY: demo demo-quick test test-fast lint real-example real-example-tv bench bench-peers benchmark benchmark-quick benchmark-peers clean venv

venv: $(STAMP)

# pyproject.toml holds the ranges a user installs; constraints.txt the exact set CI and make use.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all,test,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/chemtomo demo --out $(OUT)

demo-quick: $(STAMP)
	$(VENV)/bin/chemtomo demo --quick --out results/demo-quick

# ruff (numpy docstring convention) and import-linter (DESIGN.md's layering), both in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest

test-fast: lint
	$(PY) -m pytest -m "not slow"

real-example: $(STAMP)
	$(VENV)/bin/chemtomo reconstruct ../shared/data/ncem-idp-eds-tilt-series --lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La --line-method fit --elements O Mg Si Fe Pt Ga Al Na S C Cu N --mask otsu --compare-tomviz ../shared/data/ncem-idp-eds-tilt-series/TomVizAlignments.json --tomviz-angles=-50:50:5 --out results/ncem-idp

# the regularised fused solver beside EDS-SIRT and HEBT on the same data, its TV weight chosen by cross-validation
real-example-tv: $(STAMP)
	$(VENV)/bin/chemtomo reconstruct ../shared/data/ncem-idp-eds-tilt-series --lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La --line-method fit --elements O Mg Si Fe Pt Ga Al Na S C Cu N --mask otsu --method eds_sirt hebt_sirt fused_tv -n 100 fused_tv=200 --auto fused_tv --auto-grid mu=0.015,0.03,0.06,0.12,0.24 --out results/ncem-idp-tv

# the specimen suite of issue 13: every method at its best and automatic parameters (about an hour on 2 cores)
benchmark: $(STAMP)
	$(VENV)/bin/chemtomo benchmark --out results/benchmark

benchmark-quick: $(STAMP)
	$(VENV)/bin/chemtomo benchmark --quick --out results/benchmark-quick

bench: $(STAMP)
	$(PY) bench/speed.py --workload A --json

# chemtomo against svmbir, mbirjax, a scipy.sparse SIRT and ASTRA's CPU SIRT, time to equal quality
# (bench/peers.py); the peers live in their own environment, never in .venv
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed
$(PEERS_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[all,test]"
	$(PEERS_VENV)/bin/python -m pip install --quiet -e ".[bench-peers]"
	touch $(PEERS_STAMP)

bench-peers: $(PEERS_STAMP)
	$(PEERS_VENV)/bin/python bench/peers.py --problem both

# the specimen suite with svmbir beside chemtomo's methods, same series, same scores (issue 13)
benchmark-peers: $(PEERS_STAMP)
	$(PEERS_VENV)/bin/chemtomo benchmark --study suite --peers svmbir --out results/benchmark-peers

clean:
	rm -rf $(VENV) $(PEERS_VENV) results .pytest_cache
