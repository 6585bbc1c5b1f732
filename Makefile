# Set-up and the two entry points: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
DEMO_DIR := runs/demo

.PHONY: setup demo test clean audio-deps

# The venv is rebuilt when setup.cfg changes. torch is pinned and installed first, because an
# unpinned torch pulls a multi-GB CUDA build; setup.cfg asks only for a range 2.13.0 meets.
$(BIN)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/.installed

# Train on the bundled Bach melodies (about 5 minutes on 2 CPU cores), then write 4 melodies.
demo: setup
	mkdir -p $(DEMO_DIR)
	$(BIN)/musicgen train midi_data/bach_melodies --output $(DEMO_DIR)/model.pt --overwrite \
		--epochs 40 --max-minutes 5 --threads 1 --no-progress
	$(BIN)/musicgen generate --model $(DEMO_DIR)/model.pt --seed "C4 - - - E4 - - - G4 - - - C5 - - -" \
		--length 128 --num 4 --output-dir $(DEMO_DIR)/melodies

test: setup
	$(BIN)/python -m pytest -q

# Optional: FluidSynth and a General MIDI soundfont for 'musicgen render' and 'generate --wav'.
# Without them WAV files are rendered with sine waves. Needs apt-get (Debian, Ubuntu) and root or sudo.
audio-deps:
	@if ! command -v apt-get >/dev/null; then \
		echo "apt-get not found: install FluidSynth and a General MIDI .sf2 soundfont with your system's package manager"; exit 1; fi
	$$(test "$$(id -u)" -eq 0 || echo sudo) apt-get update
	$$(test "$$(id -u)" -eq 0 || echo sudo) apt-get install -y fluidsynth fluid-soundfont-gm

clean:
	rm -rf $(VENV) runs generated .pytest_cache
