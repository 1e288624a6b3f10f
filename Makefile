# Two commands for a newcomer: `make demo` and `make test`. Both install into ./.venv first
# (skipped when already done; see tools/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tnt-installed
INSTALL_INPUTS := requirements/build.txt requirements/mminstall.txt requirements/runtime.txt \
	requirements/tests.txt requirements/deploy.txt requirements/constraints.txt setup.py \
	tools/install.sh \
	$(wildcard tnt_backbone/ops/csrc/*.cpp) $(wildcard tnt_backbone/ops/csrc/*.h)

.PHONY: install demo demo-det demo-seg demo-cls test test-fast

install: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	bash tools/install.sh
	touch $@

demo: demo-det

demo-det: install
	$(PY) tools/demo/detection_demo.py

demo-seg: install
	$(PY) tools/demo/segmentation_demo.py

demo-cls: install
	$(PY) tools/demo/classification_demo.py

test: install
	$(PY) -m pytest -q -ra tests

test-fast: install
	$(PY) -m pytest -q -ra -m "not slow" tests
