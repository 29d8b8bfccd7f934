# Two commands do everything on a fresh clone:  make demo  and  make test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test train-toy clean-data
venv: $(STAMP)          ## create .venv, install requirements, build the offline NLTK data for g2p_en

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -c "import text; print('NLTK data for g2p_en:', text.ensure_nltk_data())"
	touch $(STAMP)

demo: venv              ## the main job on the embedded toy corpus
	$(PY) data.py prepare --corpus toy --out data/toy
	$(PY) eval.py codec --ckpt checkpoints/toy/codec.pt --data data/toy --max-utts 24 --out out/codec
	@echo "demo results: out/codec (original and reconstructed wavs, results.json, quality_vs_steps.png)"

train-toy: venv         ## retrain the shipped toy codec from scratch (about 1.5 h on a 2-core CPU)
	$(PY) data.py prepare --corpus toy --out data/toy
	$(PY) train.py codec --config toy --data data/toy --out runs/codec_toy
	$(PY) train.py export --ckpt runs/codec_toy/last.pt --out checkpoints/toy/codec.pt
	$(PY) data.py encode --codec checkpoints/toy/codec.pt --data data/toy

test: venv              ## the whole test suite
	$(PY) -m pytest -q

clean-data:             ## remove generated corpora and caches (not the venv)
	rm -rf data out runs .cache
