# The two commands of the README:
#   make app    set up .venv if needed, then serve the Gradio app (ARGS="--share" etc. are passed on)
#   make test   set up .venv with the test extras and system packages if needed, then run the tests
#   make test-fast   the same set-up, then every unit and parity test and one tiny end-to-end edit (not slow)
# Everything is installed with constraints.txt so that nothing replaces the pinned torch.

PYTHON ?= python3.11
VENV   ?= .venv
PIP    := $(VENV)/bin/pip
PY     := $(VENV)/bin/python
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: app test test-fast install install-dev clean-venv

app: $(VENV)/.installed
	$(PY) app.py $(ARGS)

test: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt requirements-nodeps.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt -c constraints.txt
	$(PIP) install --quiet --no-deps -r requirements-nodeps.txt
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt scripts/system-packages.sh
	$(PIP) install --quiet -r requirements-dev.txt -c constraints.txt
	scripts/system-packages.sh
	touch $@

clean-venv:
	rm -rf $(VENV)
