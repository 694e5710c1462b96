# Two commands do all the set-up (README "Quickstart"):
#   make demo   - create .venv on first use, then run the tour of every lesson
#   make test   - create .venv on first use, then run the test suite
# Windows: see README "Manual set-up" (python -m venv, pip install -r requirements.txt, pytest).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all bugzoo lint venv clean

# The virtual environment is rebuilt when requirements.txt or pyproject.toml changes.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m utils.tour $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

# Everything, slow tests included (trains to targets; uses real data when a local copy exists).
test-all: $(STAMP)
	$(BIN)/python -m pytest --slow $(ARGS)

# Apply every lesson's classic bugs to a scratch copy; fails if a test misses one.
bugzoo: $(STAMP)
	$(BIN)/python -m utils.bugzoo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
