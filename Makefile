# The two set-up commands of the README:
#   make demo   create .venv, install qbench, run `qbench evaluate --defense none` on the embedded moons data,
#               with the angle encoding of the published moons-qnn-angle board: about 88% clean. The model's
#               default amplitude encoding normalises each 2-feature point to a unit vector, so the point's
#               length is lost and it reaches ~70%, a number a new user cannot tell from a broken install.
#               The page to compare the demo with is leaderboards/qnn/moons-qnn-angle/README.md.
#   make test   install the test extras and run the whole suite
# torch is pinned to the local CPU wheel by constraints.txt (any other spec pulls GBs of CUDA packages).

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip install -q -c constraints.txt

.PHONY: demo test install install-test benchmarks clean chromium

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade "pip>=23" "setuptools>=68" wheel
	$(PIP) torch==2.13.0
	$(PIP) -e .
	rm -rf qbench.egg-info  # a setuptools by-product that would shadow the installed entry points
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[test]'
	rm -rf qbench.egg-info
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/qbench evaluate --defense none --model-option encoding=angle

# Debian's chromium renders the leaderboard page in a test; without root or apt the test skips. The step tries
# to install it where it can and says nothing either way (its failure is not the suite's).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 || true

test: install-test chromium
	$(PY) -m pytest

benchmarks: install
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) build *.egg-info
