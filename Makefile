# mr2ct: two commands for a newcomer.
#   make demo  - set up .venv; MR -> CT on the head phantom (quick preset): train, translate a NIfTI folder,
#                evaluate against the phantom pairs, export DICOM, review sheets and a reader study, all under
#                runs/mrct_quick
#   make test  - set up .venv, run the test suite (fast tests; `make test-all` adds the slow ones)
#   make lint  - ruff (lint + format check), mypy, and the import-layer contracts (import-linter)
#   make demo-vmnist - the volumetric MNIST demo (the paper's Table 2 task)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MRCT := bundles/mrct_cyclegan3d/configs
VMNIST := bundles/vmnist_cyclegan3d/configs
# the quick preset's head phantom (built by its training run; its validation subjects lie beside it, seed 1)
PHANTOM := bundles/mrct_cyclegan3d/data/headphantom_48x48x16_n24-6_seed0
# the suite runs in two pytest-xdist workers, each test file in one worker (its module fixtures built once);
# `make test TEST_PARALLEL=` runs it in one process
TEST_PARALLEL ?= -n 2 --dist loadfile
quick = "['$(1)/train.json','$(1)/quick.json']"
# evaluate.json and inference.json are overrides on train.json (MONAI model-zoo order)
quick_on_train = "['$(1)/train.json','$(1)/quick.json','$(1)/$(2).json']"

.PHONY: demo demo-vmnist test test-all lint install clean

# runtime: what the demos need; dev: the test and lint tools on top (make test, make lint)
$(VENV)/.installed-runtime: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned (CPU wheel): an unpinned torch would pull several GB of CUDA packages
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.installed-runtime
	$(PY) -m pip install --quiet -e ".[test,lint]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed-runtime
	$(PY) -m monai.bundle run training --config_file $(call quick,$(MRCT)) --output_dir runs/mrct_quick
	$(PY) -m monai.bundle run inference --config_file $(call quick_on_train,$(MRCT),inference) \
		--output_dir runs/mrct_quick/synthct --direction mr2ct --overwrite true --uncertainty true
	$(PY) -m monai.bundle run evaluating --config_file $(call quick_on_train,$(MRCT),evaluate) --output_dir runs/mrct_quick \
		--uncertainty true
	# for radiologists: DICOM series, review sheets, and a blinded reader study (model vs real CT)
	$(PY) -m mr2ct.cli export-dicom runs/mrct_quick/synthct --output runs/mrct_quick/dicom --overwrite
	$(PY) -m mr2ct.cli review sheets --source $(PHANTOM)/test/mr --translation runs/mrct_quick/synthct \
		--truth $(PHANTOM)/test/ct --metrics runs/mrct_quick/report/cases.csv --output runs/mrct_quick/sheets
	$(PY) -m mr2ct.cli review make --source $(PHANTOM)/test/mr --method 3D=runs/mrct_quick/synthct \
		--real $(PHANTOM)/test/ct --examples-target $(PHANTOM)/train/ct --output runs/mrct_quick/study --overwrite
	@echo "synthetic CTs: runs/mrct_quick/synthct/ (NIfTI) and runs/mrct_quick/dicom/ (DICOM)"
	@echo "report: runs/mrct_quick/report/report.md   sheets: runs/mrct_quick/sheets/index.html"
	@echo "reader study: runs/mrct_quick/study/study/index.html (score: mr2ct review score runs/mrct_quick/study)"

demo-vmnist: $(VENV)/.installed-runtime
	$(PY) -m monai.bundle run training --config_file $(call quick,$(VMNIST)) --output_dir runs/vmnist_quick
	$(PY) -m monai.bundle run evaluating --config_file $(call quick_on_train,$(VMNIST),evaluate) --output_dir runs/vmnist_quick
	@echo "report: runs/vmnist_quick/report/report.md"

test: install
	$(PY) -m pytest -q $(TEST_PARALLEL)

lint: install
	$(VENV)/bin/ruff check mr2ct tests scripts
	$(VENV)/bin/ruff format --check mr2ct tests scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-all: install
	$(PY) -m pytest -q $(TEST_PARALLEL) -m "slow or not slow"

clean:
	rm -rf runs bundles/*/models bundles/*/data
