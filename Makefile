# Two commands do everything on a fresh clone:  make demo  and  make test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test clean-data
venv: $(STAMP)          ## create .venv, install requirements, build the offline NLTK data for g2p_en

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -c "import text; print('NLTK data for g2p_en:', text.ensure_nltk_data())"
	touch $(STAMP)

demo: venv              ## the main job on the embedded toy corpus
	$(PY) data.py prepare --corpus toy --out data/toy

test: venv              ## the whole test suite
	$(PY) -m pytest -q

clean-data:             ## remove generated corpora and caches (not the venv)
	rm -rf data out .cache
