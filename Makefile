# noise2music: every target builds the virtual environment first, so a fresh clone needs nothing but `make`.
#
#   make sample PROMPT="a calm chorale on a church organ"   text -> 30 s of 24 kHz music (shipped demo checkpoints)
#   make test                                             the whole test suite (CPU, a few minutes)
#
# Settings after a training target become that stage's --key=value settings, lower-cased:
#   make train-cascader STEPS=5000 LR=2e-4 BATCH_SIZE=32   ->   python stage2_cascader.py --steps=5000 --lr=2e-4 ...
# PRESET=tiny|paper, DATA=folder and NPROC=processes (GPUs) on this machine are understood by every training target.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

PRESET ?= tiny
DATA   ?= data/music21
NPROC  ?= 1

# Every command-line setting of a training target except the ones this Makefile reads itself becomes --key=value
# (SEED, OUT, SECONDS too); a setting the stage does not know (PROMPT=, say) is an error there, never dropped.
OWN    := PRESET=% DATA=% NPROC=% PYTHON=% ARGS=%
PASS   := $(shell printf '%s\n' $(filter-out $(OWN),$(MAKEOVERRIDES)) | sed -nE 's/^([A-Za-z_]+)=(.*)$$/--\L\1\E=\2/p')
# One process runs plainly; several run under PyTorch's torchrun (DistributedDataParallel, one process per GPU).
LAUNCH := $(if $(filter 1,$(NPROC)),$(PY),$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC))
TRAIN_ARGS = --preset=$(PRESET) --data=$(DATA) $(PASS) $(ARGS)

.PHONY: help venv test bench data sample train-generator train-spec-generator train-cascader train-vocoder \
        train-superres train-mulan checkpoints demo-t5 pseudo-label eval sweep check-stages overfit

help:
	@sed -n '1,/^$$/p' Makefile

# The venv is (re)built only when a requirements file changes: a stamp file records the last install.
$(VENV)/.stamp: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

# The corpus builder's packages; tinysoundfont is installed without its pyaudio dependency, which only serves live
# playback and needs the PortAudio headers to build.
$(VENV)/.stamp-data: $(VENV)/.stamp requirements-data.txt
	$(PIP) install --quiet -r requirements-data.txt
	$(PIP) install --quiet --no-deps tinysoundfont==0.3.7
	touch $@

# Tests also render a short piece, so they install the corpus builder's packages too.
$(VENV)/.stamp-test: $(VENV)/.stamp-data requirements-test.txt
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

venv: $(VENV)/.stamp

# The whole suite on the CPU (351 tests: ~160 s on the 2-core VM, on a clean clone after the venv is built). HF_HUB_OFFLINE: the parity tests never touch a hub.
test: $(VENV)/.stamp-test
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

# The built-in corpus (corpus.py): music21 scores rendered with a General MIDI soundfont, 2,000 + 200 clips of
# 30 s in DATA (default data/music21; ~1.7 GB, ~25-40 min on one core). Run it again to resume.
#   make data TRAIN=200 TEST=20 ARGS="--workers 2"
data: $(VENV)/.stamp-data
	$(PY) data.py build --out $(DATA) $(if $(TRAIN),--train $(TRAIN)) $(if $(TEST),--test $(TEST)) $(ARGS)

# Speed and memory (bench.py): U-Net FLOP rates and the whole 30 s waveform route, per stage. Not a test.
bench: $(VENV)/.stamp
	$(PY) bench.py $(ARGS)

# Text -> music with the checkpoints in checkpoints/. PROMPT, SECONDS (30), SEED (0), ROUTE (spec|wave), N (1),
# OUT (samples/<prompt>.wav); any sample.py flag through ARGS, e.g. ARGS="--steps-generator 50".
sample: $(VENV)/.stamp
	$(PY) sample.py --prompt "$(PROMPT)" $(if $(SECONDS),--seconds $(SECONDS)) $(if $(SEED),--seed $(SEED)) \
	    $(if $(ROUTE),--route $(ROUTE)) $(if $(N),--n $(N)) $(if $(OUT),--out "$(OUT)") $(ARGS)

# --- Training: each stage's file holds its defaults; `python <file> --help` lists every setting. -------------------
# Costs are for PRESET=tiny with the defaults; PRESET=paper is Table 8's size and needs GPUs (NPROC=8 on one node).

# Stage 1, waveform generator: text -> 3.2 kHz, 30 s clips. Tiny: ~2 s/step on a 2-core CPU.
train-generator: $(VENV)/.stamp
	$(LAUNCH) stage1_generator.py --repr=wave $(TRAIN_ARGS)

# Stage 1, spectrogram generator: text -> 80-bin log-mel; trains on 2.88 s crops x 32 [choice], samples 30 s.
# Tiny: ~0.43 s/step on a 2-core CPU (one process, one loader worker).
train-spec-generator: $(VENV)/.stamp
	$(LAUNCH) stage1_generator.py --repr=spec $(TRAIN_ARGS)

# Stage 2, waveform cascader: 3.2 kHz + text -> 16 kHz, 3-4 s crops. Tiny: ~1 s/step on a 2-core CPU.
train-cascader: $(VENV)/.stamp
	$(LAUNCH) stage2_cascader.py $(TRAIN_ARGS)

# Spectrogram vocoder: log-mel -> 16 kHz, 3-4 s crops, no text. Tiny: ~1 s/step on a 2-core CPU.
train-vocoder: $(VENV)/.stamp
	$(LAUNCH) vocoder.py $(TRAIN_ARGS)

# Stage 3, super-resolution: 16 kHz -> 24 kHz, 3-4 s crops, no text. Tiny: ~1 s/step on a 2-core CPU.
train-superres: $(VENV)/.stamp
	$(LAUNCH) stage3_superres.py $(TRAIN_ARGS)

# --- Evaluation (Sec. 5): a small MuLan, pseudo-labels, FAD / similarity / adherence tables, Fig. 2's sweep. -----

# The joint text-audio embedding (mulan.py): 10 s crops against their captions. Tiny: ~1 s/step on a 2-core CPU.
train-mulan: $(VENV)/.stamp
	$(LAUNCH) mulan.py $(TRAIN_ARGS)

# Caption a folder of unlabelled audio with MuLan (Sec. 3.6): writes DATA/captions.jsonl (OUT= for another file).
pseudo-label: $(VENV)/.stamp
	$(PY) pseudolabel.py --data $(DATA) $(if $(OUT),--out "$(OUT)") $(ARGS)

# Tables 5 and 6 on the corpus's test split, both routes: N prompts (16; ~30 s each on a 2-core CPU), SECONDS (30).
# ARGS=--plain-sr adds rows with super-resolution replaced by plain resampling (sample.py --steps-superres 0).
eval: $(VENV)/.stamp
	$(PY) evaluate.py eval --data $(DATA) $(if $(N),--n $(N)) $(if $(SECONDS),--seconds $(SECONDS)) $(ARGS)

# Fig. 2 at small scale: generator guidance and step schedule, 7 settings x N prompts (8), ROUTE (wave).
sweep: $(VENV)/.stamp
	$(PY) evaluate.py sweep --data $(DATA) $(if $(N),--n $(N)) $(if $(ROUTE),--route $(ROUTE)) \
	    $(if $(SECONDS),--seconds $(SECONDS)) $(ARGS)

# Does each conditioned stage do its job? (stagecheck.py) The waveform cascader, the vocoder and super-resolution
# on N (6) held-out test clips, at sampling time, each next to its no-model answer (plain resampling, Griffin-Lim),
# and both routes fed a real clip's first stage. CHECKPOINTS= another folder (e.g. a run's exported weights).
check-stages: $(VENV)/.stamp
	$(PY) stagecheck.py --data $(DATA) $(if $(N),--n $(N)) $(if $(CHECKPOINTS),--checkpoints $(CHECKPOINTS)) $(ARGS)

# Can this stage learn at all? (overfit.py) Train it on CLIPS (8) training clips for minutes, then judge what it
# samples by the model-free figures. The first thing to run when "the loss went down but the output is noise".
#   make overfit STAGE=spec-generator        STAGE: generator, spec-generator, cascader, vocoder, superres
overfit: $(VENV)/.stamp
	$(PY) overfit.py $(STAGE) --data $(DATA) $(if $(CLIPS),--clips $(CLIPS)) $(ARGS)

# Copy the EMA weights of every finished run in runs/ into checkpoints/ (half precision), where sample.py looks.
checkpoints: $(VENV)/.stamp
	for s in waveform-generator spectrogram-generator waveform-cascader vocoder superres mulan; do \
	    if [ -f runs/$$s/last.pt ]; then $(PY) train.py export runs/$$s/last.pt checkpoints/$$s.pt; fi; done

# Rebuild assets/t5-demo, the shipped T5-shaped encoder with random weights (seed 0).
demo-t5: $(VENV)/.stamp
	$(PY) text_encoder.py make-demo
