# Two entry points for a fresh machine: `make demo` and `make test`. Both set up what they need,
# idempotently: a .venv, the CPU torch first (so nothing pulls a CUDA build), then the package.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_DEMO := espeak-ng sox
APT_TEST := $(APT_DEMO) chromium

.PHONY: demo test setup system-demo system-test clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages, installed only where missing (root, or sudo when available).
define apt_ensure
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -q $$missing >/dev/null 2>&1 || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$missing >/dev/null; }; \
	fi
endef

system-demo:
	$(call apt_ensure,$(APT_DEMO))

system-test:
	$(call apt_ensure,$(APT_TEST))

setup: system-demo $(STAMP)

demo: system-demo $(STAMP)
	$(BIN)/lora-whisper demo --out demo-output

test: system-test $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) demo-output
