# Two entry points for a fresh machine: `make demo` and `make test`. Both set up what they need,
# idempotently: a .venv, the CPU torch first (so nothing pulls a CUDA build), then the package.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_DEMO := espeak-ng sox
APT_TEST := $(APT_DEMO) chromium
# More synthesis engines for the benchmark corpora (test sets spoken by an engine no training
# clip used). festival is Debian main; mbrola, RHVoice and pico need the contrib/non-free
# components, which system-voices adds to the apt sources where they are missing. Optional:
# without them the corpus builder offers fewer engines and the tests still pass.
APT_VOICES := festival festvox-italp16k festvox-itapc16k mbrola mbrola-pl1 mbrola-it3 mbrola-it4 \
	mbrola-br1 mbrola-br3 mbrola-pt1 mbrola-gr1 mbrola-gr2 mbrola-jp2 mbrola-jp3 mbrola-es2 mbrola-es3 \
	mbrola-de4 mbrola-de6 mbrola-nl2 mbrola-nl3 rhvoice rhvoice-polish rhvoice-brazilian-portuguese \
	libttspico-utils

.PHONY: demo test setup system-demo system-test system-voices clean

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

system-test: system-voices
	$(call apt_ensure,$(APT_TEST))

# Best effort (a leading '-': a machine without these packages still builds and tests).
system-voices:
	-@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	if [ -d /etc/apt/sources.list.d ] && grep -q debian /etc/os-release 2>/dev/null && \
	   ! grep -rqs "contrib" /etc/apt/sources.list /etc/apt/sources.list.d/; then \
	  codename=$$(. /etc/os-release && echo $$VERSION_CODENAME); \
	  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s %s-updates\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
	    $$codename $$codename | $$SUDO tee /etc/apt/sources.list.d/lora-whisper-voices.sources >/dev/null && \
	  $$SUDO apt-get update -q >/dev/null; \
	fi
	-$(call apt_ensure,$(APT_VOICES))

setup: system-demo $(STAMP)

demo: system-demo $(STAMP)
	$(BIN)/lora-whisper demo --out demo-output

test: system-test $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) demo-output
