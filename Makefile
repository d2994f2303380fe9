PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test bench lint examples clean

# The stamp installs the pinned torch and the project once; scripts/ensure_torch.sh then runs every time: on Linux
# with an NVIDIA GPU it replaces a CPU build of torch with a CUDA one, and it prints the build and whether CUDA works.
setup: $(STAMP)
	@scripts/ensure_torch.sh $(BIN)/python

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test,mnist,cluster,shapes3d]"
	@touch $(STAMP)

run: setup
	$(BIN)/python main.py

lint: setup
	$(BIN)/ruff check .

test: setup
	$(BIN)/ruff check .
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -n 2 --reruns 2

bench: setup
	@for f in bench/*.py; do case $$f in *soak*) continue;; esac; echo "== $$f"; $(BIN)/python $$f --quick || exit 1; done

# Retrain the shipped example models (resources/examples/) with the CLI and rewrite their manifest (minutes to ~1 h).
examples: setup
	$(BIN)/python scripts/make_examples.py

clean:
	rm -rf $(VENV) build *.egg-info
