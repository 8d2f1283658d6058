# Two commands for a newcomer (see README):  make lab   |   make test
# Everything lives in a local virtual environment (.venv); nothing is installed system-wide.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# PyTorch pinned to the builds this course's machines carry; override for another platform,
# e.g. make lab TORCH="torch torchvision"
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# The course repository keeps MNIST beside the lab; elsewhere the package downloads it once.
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifneq ($(wildcard $(SHARED_MNIST)/t10k-images-idx3-ubyte.gz),)
export LABSUPPORT_DATA ?= $(SHARED_MNIST)
endif
export LABSUPPORT_PROGRESS ?= 0
# Jupyter refuses to start as root unless told; containers and CI machines often run as root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test test-package test-notebooks evaluate bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	touch $@

lab: setup
	$(BIN)/labsupport workspace --out workspace
	LABSUPPORT_PROGRESS=1 $(BIN)/jupyter lab --notebook-dir=workspace $(LAB_ARGS)

test: test-package test-notebooks

test-package: setup
	$(BIN)/python -m pytest tests -q

# The solved notebooks run in full; the student edition (its stubs fall back to the reference) runs in
# fast mode, which keeps every TODO, check and case and shrinks only the demonstration runs.
test-notebooks: setup
	rm -rf build/student
	$(BIN)/labsupport release --out build/student
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks -q
	LABSUPPORT_FAST=1 $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider build/student -q

evaluate: setup
	$(BIN)/labsupport evaluate

bench: setup
	$(BIN)/labsupport bench

clean:
	rm -rf build .pytest_cache
