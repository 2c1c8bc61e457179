# mr2ct: two commands for a newcomer.
#   make demo  - set up .venv, train the volumetric MNIST bundle (quick preset), evaluate, write runs/ report
#   make test  - set up .venv, run the test suite (fast tests; `make test-all` adds the slow ones)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUNDLE := bundles/vmnist_cyclegan3d/configs
QUICK := "['$(BUNDLE)/train.json','$(BUNDLE)/quick.json']"
QUICK_EVAL := "['$(BUNDLE)/evaluate.json','$(BUNDLE)/quick.json']"

.PHONY: demo test test-all install clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned (CPU wheel): an unpinned torch would pull several GB of CUDA packages
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m monai.bundle run training --config_file $(QUICK) --output_dir runs/vmnist_quick
	$(PY) -m monai.bundle run evaluating --config_file $(QUICK_EVAL) --output_dir runs/vmnist_quick
	@echo "report: runs/vmnist_quick/report/report.md"

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf runs bundles/*/models bundles/*/data
