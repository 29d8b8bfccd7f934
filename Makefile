# Two commands do everything on a fresh clone:  make demo  and  make test  (make check: every test, what CI runs).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv help demo test check ablate train-toy clean-data assignment grade
venv: $(STAMP)          ## create .venv, install requirements, build the offline NLTK data for g2p_en

$(STAMP): requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -c "from corpus import text; print('NLTK data for g2p_en:', text.ensure_nltk_data())"
	touch $(STAMP)

help:                   ## list these targets
	@awk -F ':.*## ' '/^[a-z-]+:.*## /{printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

demo: venv              ## the main job on the embedded toy corpus: corpus, codec, zero-shot TTS on held-out voices
	$(PY) -m evaluation.demo --out out
	@echo "demo results: out/tts (zero-shot wavs, plots/, results.md), out/codec (codec resynthesis), out/sing (a sung line), out/real (the real-voice model in two native voices)"

test: venv              ## the fast tier (about 3 minutes): every component on tiny configs, the shipped checkpoints
	$(PY) -m pytest -q -m "not slow"

check: venv             ## every test: the fast tier, the notebooks, DDP, the assignment round trip, long runs (CI)
	$(PY) -m pytest -q

# A quick ablation (docs/ablations.md): models with and without SWITCH (any --key=value override; Table 9's:
# --prior.use_prompt=false, --denoiser.use_prompt=false, --denoiser.use_query_attention=false, --use_ce_rvq=false),
# ABLATE_STEPS steps each, over ABLATE_SEEDS seeds, scored on held-out voices; finished runs are reused. A variable
# left empty takes the command's default (python -m evaluation.ablate --help): the default question is SWITCH=
# --prior.use_prompt=false on the tiny preset.
SWITCH ?=
ABLATE_PRESET ?=
ABLATE_STEPS ?=
ABLATE_SEEDS ?=
ablate: venv            ## models with and without SWITCH=--key=value (ABLATE_STEPS, ABLATE_SEEDS): mean ± sd, held-out voices
	$(PY) -m evaluation.ablate $(SWITCH) $(if $(ABLATE_PRESET),--preset $(ABLATE_PRESET)) \
		$(if $(ABLATE_STEPS),--steps $(ABLATE_STEPS)) $(if $(ABLATE_SEEDS),--seeds $(ABLATE_SEEDS))

assignment: venv        ## a student copy in assignment/, the paper's core cut out (docs/assignment.md; FORCE=1 replaces it)
	$(PY) -m tools.assignment make --out assignment $(if $(FORCE),--force)

grade: venv             ## grade assignment/: each exercise alone, the others' solutions in place (JOBS=2: two at once)
	$(PY) -m tools.assignment grade --out assignment $(if $(JOBS),--jobs $(JOBS))

# Retrain the shipped toy models from scratch (resumable: re-run to continue). QUICK=1 runs a few hundred steps of
# each stage into runs/quick/ (shipped checkpoints untouched) so that anyone can watch the whole pipeline run.
# The LDM is trained jointly, as the paper. Pitch enters c through a binned embedding (--prior.pitch_bins=256;
# README "Departures").
# The codec and the phoneme recogniser train on the stock corpus (data/toy: 64 training voices); the diffusion model
# on $(VOICES), the same voices plus $(DRAWN) of drawn timbres (corpus/timbres.py), for $(TOY_LDM_STEPS) steps.
VOICES ?= data/toy256
DRAWN ?= 192
TOY_LDM_STEPS ?= 12000
QUICK ?= 0
QUICK_STEPS ?= 200
ifeq ($(QUICK),1)
RUN  := runs/quick
CKPT := runs/quick
VOICES := runs/quick/toy_voices
DRAWN := 8
STEPS := --steps=$(QUICK_STEPS) --adv_start=$(shell echo $$(( $(QUICK_STEPS) * 3 / 4 ))) --val_every=$(QUICK_STEPS)
LDM_STEPS := --steps=$(QUICK_STEPS) --val_every=$(QUICK_STEPS) --warmup_steps=$(shell echo $$(( $(QUICK_STEPS) / 4 + 1 )))
ASR_STEPS := --steps=$(QUICK_STEPS)
else
LDM_STEPS := --steps=$(TOY_LDM_STEPS)
RUN  := runs
CKPT := checkpoints/toy
endif
resume = $(if $(wildcard $(1)/last.pt),--resume,)

train-toy: venv         ## retrain the toy codec, diffusion model and phoneme recogniser (QUICK=1: short runs into runs/quick)
	$(PY) -m corpus.data prepare --corpus toy --out data/toy
	$(PY) train.py codec --config toy --data data/toy --out $(RUN)/codec_toy $(call resume,$(RUN)/codec_toy) $(STEPS)
	$(PY) train.py export --ckpt $(RUN)/codec_toy/last.pt --out $(CKPT)/codec.pt
	$(PY) -m corpus.data encode --codec $(CKPT)/codec.pt --data data/toy
	$(PY) -m corpus.data prepare --corpus toy --out $(VOICES) --drawn-voices $(DRAWN) --splits train,valid
	$(PY) -m corpus.data encode --codec $(CKPT)/codec.pt --data $(VOICES)
	$(PY) train.py ldm --config toy --data $(VOICES) --codec $(CKPT)/codec.pt --out $(RUN)/ldm_toy \
		--prior.pitch_bins=256 $(call resume,$(RUN)/ldm_toy) $(LDM_STEPS)
	$(PY) train.py export --ckpt $(RUN)/ldm_toy/last.pt --out $(CKPT)/ldm.pt
	$(PY) -m evaluation.asr train --data data/toy --out $(CKPT)/asr.pt $(ASR_STEPS)

clean-data:             ## remove generated corpora and caches (not the venv)
	rm -rf data out runs .cache
