# Every target creates .venv on first use. Torch is installed first, pinned to the CPU build that
# lies on this machine's disk (override with `make TORCH=torch ...` elsewhere), so the package's
# `torch>=2.3,<3` range is already met and pip never reaches for a multi-GB CUDA build.
PY      ?= python3
VENV    ?= .venv
TORCH   ?= torch==2.13.0
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed

.PHONY: run test bench bench-image clean demo browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# The main job: 10 s of chorale music from nothing with the shipped hierarchy (seed 0; each level's preview
# beside it), then the quick image and vocoder steps: a small MADE trained on real handwritten digits for a
# few hundred steps, and a held-out speech clip vocoded beside Griffin-Lim (both through the model's default band post-filter).
run: $(STAMP)
	$(BIN)/arsound generate --model music-chorales --seconds 10 --seed 0 --every-level -o runs/quickstart
	$(BIN)/arsound train image_zoo --model.name=made --train.steps=300 --train.lr=1e-2 --out runs/quickstart/made
	$(BIN)/arsound vocode checkpoints/wavenet-speech-en/heldout.wav -o runs/quickstart/vocoded.wav \
	  --model wavenet-speech-en --compare

test: $(STAMP)
	$(BIN)/python -m pytest

# The listening demo (demo/app.py) on http://127.0.0.1:7860: no network at start or at run time.
demo: $(STAMP)
	$(BIN)/arsound demo --port $(or $(PORT),7860)

# What the demo's browser test (tests/demo/test_browser.py) needs besides the dev extra: Debian's chromium, driven by
# Playwright through its executable path (never `playwright install`). Installed with apt-get when we are root or
# have sudo; otherwise the command to run is printed and the browser test is skipped, saying so.
browser:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "make browser: chromium is missing; as root run: apt-get install chromium" >&2; exit 0; fi; \
	$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends chromium

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The equal-budget image zoo table (recipes/image_zoo/RESULTS.md): thirteen models x three seeds, about four
# CPU-hours (1 thread; run several `--models` subsets in parallel into one --out, then `--collect --write`).
bench-image: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.image_zoo --steps 800 --batch 32 --seeds 0,1,2 --out runs/image_zoo3 --write

clean:
	rm -rf $(VENV) runs .pytest_cache

# Audio datasets built from installed packages (arsound/data/prepare.py): Debian's fluidsynth + GM soundfont
# render music21's Bach chorales, ffmpeg decodes Asterisk's prompts (en + es/fr/it/ru; the plain
# asterisk-core-sounds-LL packages add the transcripts). Missing packages are apt-get installed when we are
# root or have sudo; otherwise the command to run is printed. Re-running verifies and skips finished files.
DATA_DEBS = fluidsynth fluid-soundfont-gm ffmpeg \
            $(foreach l,en es fr it ru,asterisk-core-sounds-$(l)-g722 asterisk-core-sounds-$(l))
.PHONY: data
data: $(STAMP)
	@missing=$$(for p in $(DATA_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	missing=$$(echo $$missing); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; \
	  elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	  else echo "make data: missing Debian packages; as root run: apt-get install $$missing" >&2; exit 2; fi; \
	  echo "installing: $$missing"; \
	  $$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi
	$(BIN)/arsound data prepare chorales
	$(BIN)/arsound data prepare speech
