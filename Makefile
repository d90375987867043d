# chemtomo: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= results/demo

.PHONY: demo demo-quick test test-fast lint real-example real-example-absorption real-example-tv bench bench-peers benchmark benchmark-quick benchmark-peers clean venv

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

# the real example corrected for X-ray absorption (issue 14): the Super-X the .bcf files state (elevation 18 deg;
# the four azimuths and the solid angle they lack given), the default density 3.0 g/cm^3 assumed (docs/experimental.md);
# writes the fractions before and after (figures/fig_absorption_fractions.png, figures/absorption_fractions.md)
real-example-absorption: $(STAMP)
	$(VENV)/bin/chemtomo reconstruct ../shared/data/ncem-idp-eds-tilt-series --lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La --line-method fit --elements O Mg Si Fe Pt Ga Al Na S C Cu N --mask otsu --absorption file --eds-azimuth-deg 45 135 225 315 --solid-angle-sr 0.7 --out results/ncem-idp-absorption

# the regularised fused solver beside EDS-SIRT and HEBT on the same data, its TV weight chosen by cross-validation
real-example-tv: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/chemtomo reconstruct ../shared/data/ncem-idp-eds-tilt-series --lines O_Ka Mg_Ka Si_Ka Fe_Ka Pt_La --line-method fit --elements O Mg Si Fe Pt Ga Al Na S C Cu N --mask otsu --method eds_sirt hebt_sirt fused_tv -n 100 fused_tv=200 --auto fused_tv --auto-grid mu=0.015,0.03,0.06,0.12,0.24 --out results/ncem-idp-tv

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
