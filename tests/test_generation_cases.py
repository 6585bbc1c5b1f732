"""Generation and training conditions, run through the real CLI on MIDI files the tests write.

The conditions are bad or unusual seeds, collapsed, silent or velocity-0 output, grid timing,
tempo and meter, small or oddly named training folders, very long generation, and checkpoints
saved on a GPU. A gNN prefix groups the tests of one condition. Unless a test says otherwise,
a MIDI input is format 1 at 480 ticks per quarter note, with 120 BPM and 4/4 in track 0 and
the notes on channel 0 (program 0, velocity 80) in track 1. One 16th-note grid step is 120 ticks.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import torch

from musicgen.checkpoint import load_model
from musicgen.cli import cli
from musicgen.notes import pitch_to_name
from musicgen.render import read_wav
from musicgen.sampling import sample_continuations
from musicgen.seed import parse_seed
from musicgen.tokenizer import MelodyTokenizer, tokenizer_from_dict
from tests.conftest import BACH_MELODIES, REPO_ROOT, copy_melodies

PPQ = 480
STEP_TICKS = PPQ // 4
BAR_TICKS = 4 * PPQ
DEFAULT_MODEL = REPO_ROOT / "models" / "bach_melody_lstm.pt"
TYPOGRAPHIC_QUOTES = "\u201c\u201d\u2018\u2019"


# -- writing and reading MIDI files ------------------------------------------------------


def write_seed_file(path: Path, notes, *, tempo: int = 500_000, meter=(4, 4), drums=()) -> Path:
    """Write a format 1 file; `notes` and `drums` are (pitch, start tick, end tick[, velocity])."""
    midi_file = mido.MidiFile(type=1, ticks_per_beat=PPQ)
    midi_file.tracks.append(_track_from_events([
        (0, 0, mido.MetaMessage("set_tempo", tempo=tempo)),
        (0, 0, mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1])),
    ]))
    melody = [(0, 0, mido.Message("program_change", channel=0, program=0))]
    melody += _note_events(notes, channel=0)
    midi_file.tracks.append(_track_from_events(melody))
    if drums:
        midi_file.tracks.append(_track_from_events(_note_events(drums, channel=9)))
    midi_file.save(path)
    return path


def _note_events(notes, channel: int) -> list:
    events = []
    for note in notes:
        pitch, start, end = note[:3]
        velocity = note[3] if len(note) > 3 else 80
        events.append((start, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
        events.append((end, 0, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    return events


def _track_from_events(events) -> mido.MidiTrack:
    """Turn (absolute tick, order, message) triples into a track; note-offs sort before note-ons at one tick."""
    track = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda event: (event[0], event[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    return track


def quarter_notes(pitches, start: int = 0) -> list[tuple[int, int, int]]:
    return [(pitch, start + index * PPQ, start + (index + 1) * PPQ) for index, pitch in enumerate(pitches)]


def read_notes(path: Path) -> list[tuple[int, int, int, int]]:
    """Read (pitch, start tick, end tick, velocity) with mido, sorted by onset."""
    notes = []
    for track in mido.MidiFile(path).tracks:
        now, sounding = 0, {}
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                sounding.setdefault((message.channel, message.note), []).append((now, message.velocity))
            elif message.type in ("note_on", "note_off"):
                start, velocity = sounding[(message.channel, message.note)].pop(0)
                notes.append((message.note, start, now, velocity))
    return sorted(notes, key=lambda note: (note[1], note[0]))


def meta_events(path: Path, kind: str) -> list[tuple[int, mido.MetaMessage]]:
    """Return (absolute tick, message) for every meta event of one type."""
    found = []
    for track in mido.MidiFile(path).tracks:
        now = 0
        for message in track:
            now += message.time
            if message.type == kind:
                found.append((now, message))
    return found


def file_tokens(path: Path) -> list[int]:
    """Tokenize a written file again with the default melody tokenizer (no BOS or EOS)."""
    return MelodyTokenizer().encode(str(path), add_special_tokens=False)


def sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def embedded_settings(path: Path) -> dict:
    """Return the settings recorded in the 'musicgen {...}' text meta event."""
    texts = [message.text for _, message in meta_events(path, "text") if message.text.startswith("musicgen ")]
    assert len(texts) == 1
    return json.loads(texts[0].removeprefix("musicgen "))


# -- running the CLI -------------------------------------------------------------------------


TOKENIZER = MelodyTokenizer()
ON = TOKENIZER.note_on_id
HOLD, REST = TOKENIZER.hold_id, TOKENIZER.rest_id


def held(pitch: int, steps: int) -> list[int]:
    return [ON(pitch)] + [HOLD] * (steps - 1)


def generate(runner, model: Path, output_dir: Path, *args: str):
    return runner.invoke(cli, ["generate", "--model", str(model), "--output-dir", str(output_dir), *args])


def train(runner, folder: Path, output: Path, *args: str):
    return runner.invoke(cli, ["train", str(folder), "--output", str(output), "--no-progress", *args])


def written_paths(result) -> list[Path]:
    return [Path(line) for line in result.stdout.splitlines() if line.endswith(".mid")]


def one_line_error(result) -> str:
    """Return the only 'Error:' line of a failed run, checking that no traceback was shown."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def no_files_in(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def pitch_range(model: Path) -> tuple[int, int]:
    config = torch.load(model, map_location="cpu", weights_only=True)["tokenizer"]["config"]
    return config["pitch_low"], config["pitch_high"]


def sampled_tokens(model: Path, seed: str, steps: int, num: int, random_seed: int) -> list[list[int]]:
    """Sample on the CPU as `generate --device cpu` does; returns seed plus continuation per melody."""
    network, tokenizer, _ = load_model(model, torch.device("cpu"))
    seed_ids = parse_seed(seed, tokenizer).ids
    generator = torch.Generator(device="cpu").manual_seed(random_seed)
    rows = sample_continuations(network, tokenizer, seed_ids, steps, num, 1.0, generator)
    return [seed_ids + row for row in rows]


def biased_checkpoint(source: Path, destination: Path, token: str, delta: float) -> Path:
    """Copy a checkpoint with `delta` added to the output bias of one token, keeping the dict format."""
    payload = torch.load(source, map_location="cpu", weights_only=True)
    token_id = payload["tokenizer"]["vocabulary"].index(token)
    payload["model_state"]["output.bias"][token_id] += delta
    torch.save(payload, destination)
    return destination


def metrics_rows(checkpoint: Path) -> list[dict[str, str]]:
    with open(checkpoint.with_suffix(".metrics.csv"), newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def longest_run(pitches: list[int]) -> int:
    best = length = 1
    for previous, current in zip(pitches, pitches[1:]):
        length = length + 1 if current == previous else 1
        best = max(best, length)
    return best


# -- seed pitches outside the range, unseen velocities -------------------------------


@pytest.mark.parametrize(("form", "side"), [
    ("names", "low"), ("names", "high"), ("midi", "low"), ("midi", "high"), ("numbers", "high"),
])
def test_g01_seed_pitch_out_of_range(runner, small_model, tmp_path, form, side):
    low, high = pitch_range(small_model)
    bad = low - 1 if side == "low" else high + 1
    if form == "names":
        seed = f"C4 {pitch_to_name(bad)}"
    elif form == "numbers":
        seed = f"60,{bad}"
    else:
        seed = str(write_seed_file(tmp_path / "seed_out_of_range.mid", quarter_notes([60, bad])))
    output_dir = tmp_path / "out"

    line = one_line_error(generate(runner, small_model, output_dir, "--seed", seed, "--length", "32"))

    assert f"seed pitch {bad} ({pitch_to_name(bad)})" in line
    assert f"pitch range {low}..{high} ({pitch_to_name(low)}..{pitch_to_name(high)})" in line
    assert "transpose the seed or choose pitches in range" in line
    assert no_files_in(output_dir)


@pytest.mark.parametrize("value", ["128", "-1"])
def test_g01_seed_number_not_a_midi_pitch(runner, small_model, tmp_path, value):
    low, high = pitch_range(small_model)
    output_dir = tmp_path / "out"

    line = one_line_error(generate(runner, small_model, output_dir, "--seed", value, "--length", "32"))

    assert f"invalid --seed token '{value}' (token 1)" in line
    assert "MIDI pitches are 0..127" in line
    assert f"pitch range is {low}..{high}" in line
    assert "note name like C4" in line
    assert no_files_in(output_dir)


def test_g01_seed_velocities_ignored(runner, small_model, tmp_path):
    notes = [(pitch, start, start + PPQ, velocity)
             for (pitch, start, _), velocity in zip(quarter_notes([60, 62, 64, 65]), [31, 1, 127, 64])]
    seed = write_seed_file(tmp_path / "seed_velocities.mid", notes)

    result = generate(runner, small_model, tmp_path / "out", "--seed", str(seed), "--length", "16", "--random-seed", "1")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert file_tokens(path)[:16] == held(60, 4) + held(62, 4) + held(64, 4) + held(65, 4)
    assert sidecar(path)["seed_steps"] == 16


# -- seed longer than the length requested -------------------------------------------
# --length and --bars count only the continuation, as their --help text states.


@pytest.fixture
def five_bar_seed(tmp_path) -> Path:
    """20 quarter notes alternating C4 and G4: 5 bars, 80 steps."""
    return write_seed_file(tmp_path / "seed_5bars.mid", quarter_notes([60, 67] * 10))


FIVE_BAR_TOKENS = (held(60, 4) + held(67, 4)) * 10


@pytest.mark.parametrize(("args", "continuation"), [(["--bars", "4"], 64), (["--length", "80"], 80)])
def test_g02_seed_longer_than_request(runner, small_model, tmp_path, five_bar_seed, args, continuation):
    result = generate(runner, small_model, tmp_path / "out", "--seed", str(five_bar_seed), "--random-seed", "1", *args)

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert sidecar(path)["seed_steps"] == 80
    assert sidecar(path)["length_steps"] == continuation
    assert file_tokens(path)[:80] == FIVE_BAR_TOKENS
    assert max(end for _, _, end, _ in read_notes(path)) <= (80 + continuation) * STEP_TICKS
    assert f"is 80 steps; generating {continuation} more steps" in result.output
    assert not re.search(r"\d\.\d+ steps", result.output)


def test_g02_seed_bars_cuts_seed(runner, small_model, tmp_path, five_bar_seed):
    result = generate(runner, small_model, tmp_path / "out", "--seed", str(five_bar_seed),
                      "--seed-bars", "4", "--length", "16", "--random-seed", "1")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert file_tokens(path)[:64] == FIVE_BAR_TOKENS[:64]
    assert sidecar(path)["seed_steps"] == 64
    assert sidecar(path)["length_steps"] == 16
    assert max(end for _, _, end, _ in read_notes(path)) <= 80 * STEP_TICKS


# -- seed files with chords, drums or no notes ------------------------------------------


def test_g03_chord_seed_takes_highest_note(runner, small_model, tmp_path):
    chord = [(pitch, 0, BAR_TICKS) for pitch in (60, 64, 67)]
    seed = write_seed_file(tmp_path / "seed_chord_then_melody.mid", chord + quarter_notes([64, 65, 67, 69], BAR_TICKS))

    result = generate(runner, small_model, tmp_path / "out", "--seed", str(seed), "--length", "16", "--random-seed", "1")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert file_tokens(path)[:32] == held(67, 16) + held(64, 4) + held(65, 4) + held(67, 4) + held(69, 4)
    assert sidecar(path)["seed_steps"] == 32
    assert "several notes sounding at 16 steps" in result.output


def test_g03_drum_track_ignored(runner, small_model, tmp_path):
    kicks = [(36, beat * PPQ, beat * PPQ + STEP_TICKS) for beat in range(4)]
    hats = [(42, eighth * PPQ // 2, eighth * PPQ // 2 + STEP_TICKS) for eighth in range(8)]
    seed = write_seed_file(tmp_path / "seed_with_drums.mid", quarter_notes([64, 65, 67, 69]), drums=kicks + hats)

    result = generate(runner, small_model, tmp_path / "out", "--seed", str(seed), "--length", "16", "--random-seed", "1")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert file_tokens(path)[:16] == held(64, 4) + held(65, 4) + held(67, 4) + held(69, 4)
    assert sidecar(path)["seed_steps"] == 16


@pytest.mark.parametrize("name", ["no_notes.mid", "drums_only.mid"])
def test_g03_seed_without_pitched_notes(runner, small_model, tmp_path, edge_dir, name):
    output_dir = tmp_path / "out"

    line = one_line_error(generate(runner, small_model, output_dir, "--seed", str(edge_dir / name), "--length", "16"))

    assert f"seed file {name} has no pitched notes" in line
    assert 'note names such as "C4 E4 G4"' in line
    assert no_files_in(output_dir)


# -- seed text in foreign or typographic forms ------------------------------------------


@pytest.mark.parametrize(("text", "pitches"), [
    ("60, 64 ,67", [60, 64, 67]),
    ("C4  E4\tG4", [60, 64, 67]),
    ("c4 e4 g4", [60, 64, 67]),
    ("Bb3 F#4 E\u266d4", [58, 66, 63]),
])
def test_g04_seed_spellings_accepted(runner, small_model, tmp_path, text, pitches):
    result = generate(runner, small_model, tmp_path / "out", "--length", "16", "--seed", text, "--random-seed", "1")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert file_tokens(path)[:3] == [ON(pitch) for pitch in pitches]
    assert sidecar(path)["seed_steps"] == 3


@pytest.mark.parametrize(("text", "quoted"), [
    ("\u201cC4 E4 G4\u201d", "'\u201cC4' (token 1)"),
    ("[60, -2, -2, -2, 64]", "'[60' (token 1)"),
    ("", "empty --seed"),
])
def test_g04_seed_text_rejected(runner, small_model, tmp_path, text, quoted):
    output_dir = tmp_path / "out"

    line = one_line_error(generate(runner, small_model, output_dir, "--length", "16", "--seed", text))

    assert quoted in line
    assert "note name like C4" in line
    assert "MIDI numbers like 60,64,67" in line
    assert "path to a MIDI file" in line
    assert no_files_in(output_dir)


def test_g04_bad_seed_never_reads_stdin(small_model, tmp_path):
    # stdin stays open and empty: a command that waited for input would time out here.
    process = subprocess.Popen(
        [sys.executable, "-m", "musicgen", "generate", "--model", str(small_model), "--length", "16",
         "--seed", "\u201cC4 E4 G4\u201d", "--output-dir", str(tmp_path / "out")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
    )
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "invalid --seed token" in stderr


def test_g04_help_examples_use_ascii_quotes(runner):
    text = runner.invoke(cli, ["generate", "--help"]).output
    assert "--seed" in text
    assert not any(quote in text for quote in TYPOGRAPHIC_QUOTES)


def test_g04_readme_examples_use_ascii_quotes():
    readme = REPO_ROOT / "README.md"
    if not readme.is_file():
        pytest.skip("README.md does not exist yet")
    seed_lines = [line for line in readme.read_text(encoding="utf-8").splitlines() if "--seed" in line]
    assert seed_lines
    for line in seed_lines:
        assert not any(quote in line for quote in TYPOGRAPHIC_QUOTES), line


# -- collapsed or identical output -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """One epoch of a 16-unit LSTM on the bundled melodies, with --max-minutes 0.5 as a time limit."""
    from click.testing import CliRunner

    output = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    result = train(CliRunner(), BACH_MELODIES, output, "--epochs", "1", "--hidden-size", "16", "--layers", "1",
                   "--max-minutes", "0.5")
    assert result.exit_code == 0, result.output
    return output


def test_g05_greedy_tiny_model_warns_on_collapse(runner, tiny_model, tmp_path):
    result = generate(runner, tiny_model, tmp_path / "out", "--seed", "C4 E4 G4", "--length", "64", "--temperature", "0")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    pitches = [pitch for pitch, _, _, _ in read_notes(path)]
    collapsed = len(set(pitches)) == 1 or longest_run(pitches) > 16
    assert ("struck" in result.output) == collapsed
    if collapsed:
        assert path.name in result.output


def test_g05_repeated_pitch_warning(runner, small_model, tmp_path):
    # +50 on G4's output bias makes every generated step a new G4: 64 onsets plus the seed's.
    model = biased_checkpoint(small_model, tmp_path / "g4_only.pt", "NOTE_ON_67", 50.0)

    result = generate(runner, model, tmp_path / "out", "--seed", "C4 E4 G4", "--length", "64", "--random-seed", "1")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert path.is_file()
    warnings = [line for line in result.output.splitlines() if "struck" in line]
    assert len(warnings) == 1
    assert path.name in warnings[0]
    assert "G4 is struck 65 times in a row" in warnings[0]
    assert "--temperature" in warnings[0]
    assert "repetition guard" not in warnings[0]


def test_g05_samples_of_one_run_differ(runner, small_model, tmp_path):
    result = generate(runner, small_model, tmp_path / "out", "--seed", "C4 E4 G4", "--length", "64",
                      "--temperature", "1.0", "--num", "4", "--random-seed", "1")

    assert result.exit_code == 0, result.output
    paths = written_paths(result)
    assert len(paths) == 4
    assert len({tuple(read_notes(path)) for path in paths}) > 1


def count_varied(paths: list[Path]) -> int:
    """Count melodies whose continuation uses 3 or more distinct pitches (the seed takes steps 0-2)."""
    continuation_pitches = [{pitch for pitch, start, _, _ in read_notes(path) if start >= 3 * STEP_TICKS} for path in paths]
    return sum(1 for pitches in continuation_pitches if len(pitches) >= 3)


def twenty_samples(runner, model: Path, output_dir: Path) -> list[Path]:
    result = generate(runner, model, output_dir, "--seed", "C4 E4 G4", "--length", "128",
                      "--temperature", "1.0", "--num", "20", "--random-seed", "1")
    assert result.exit_code == 0, result.output
    return written_paths(result)


def test_g05_default_model_uses_several_pitches(runner, tmp_path):
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"the bundled model {DEFAULT_MODEL} has not been trained yet")

    paths = twenty_samples(runner, DEFAULT_MODEL, tmp_path / "out")

    assert len(paths) == 20
    assert count_varied(paths) >= 18


def test_g05_small_model_uses_several_pitches(runner, small_model, tmp_path):
    paths = twenty_samples(runner, small_model, tmp_path / "out")

    assert len(paths) == 20
    assert count_varied(paths) >= 18


# -- generated files without notes -------------------------------------------------------


@pytest.fixture(scope="module")
def rest_only_model(small_model, tmp_path_factory) -> Path:
    return biased_checkpoint(small_model, tmp_path_factory.mktemp("rest") / "rest_only.pt", "REST", 50.0)


def test_g06_silent_files_fail_the_run(runner, rest_only_model, tmp_path):
    result = generate(runner, rest_only_model, tmp_path / "out", "--seed", "R", "--length", "32", "--num", "3")

    line = one_line_error(result)
    assert "3 of 3 files contain no notes (32 generated steps each)" in line
    assert len(written_paths(result)) == 3


def test_g06_seed_notes_kept_with_silent_continuation(runner, rest_only_model, tmp_path):
    result = generate(runner, rest_only_model, tmp_path / "out", "--seed", "C4 E4", "--length", "32")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert [(pitch, start, end) for pitch, start, end, _ in read_notes(path)] == [
        (60, 0, STEP_TICKS), (64, STEP_TICKS, 2 * STEP_TICKS),
    ]
    assert "the 32 generated steps contain no notes, only the seed's" in result.output


def test_g06_rest_only_seed_accepted(runner, small_model, tmp_path):
    result = generate(runner, small_model, tmp_path / "out", "--seed", "R R R R", "--length", "32", "--random-seed", "1")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert sidecar(path)["seed_steps"] == 4
    assert read_notes(path)[0][1] >= 4 * STEP_TICKS


def test_g06_immediate_end_token(runner, small_model, tmp_path):
    model = biased_checkpoint(small_model, tmp_path / "eos_first.pt", "EOS", 50.0)

    result = generate(runner, model, tmp_path / "out", "--seed", "C4 E4", "--length", "32", "--stop-at-eos")

    assert result.exit_code == 0, result.output
    assert "the melody ended after 0 generated steps" in result.output
    assert len(read_notes(written_paths(result)[0])) == 2


# -- velocity 0 ----------------------------------------------------------------------------


def test_g07_negative_velocity_rejected(runner, small_model, tmp_path):
    # --velocity 0 and 128 are covered in test_cli.py.
    output_dir = tmp_path / "out"

    line = one_line_error(generate(runner, small_model, output_dir, "--seed", "C4 E4 G4", "--length", "32", "--velocity", "-1"))

    assert "--velocity" in line
    assert "-1 is not in the range 1<=x<=127" in line
    assert no_files_in(output_dir)


def test_g07_every_note_on_is_audible(runner, small_model, tmp_path):
    result = generate(runner, small_model, tmp_path / "out", "--seed", "C4 E4 G4", "--length", "32", "--num", "4",
                      "--random-seed", "7", "--device", "cpu")

    assert result.exit_code == 0, result.output
    paths = written_paths(result)
    assert len(paths) == 4
    for path, tokens in zip(paths, sampled_tokens(small_model, "C4 E4 G4", 32, 4, 7)):
        sounding: set[int] = set()
        for message in mido.MidiFile(path).tracks[1]:
            if message.type == "note_on" and message.velocity > 0:
                assert 1 <= message.velocity <= 127
                sounding.add(message.note)
            elif message.type in ("note_on", "note_off"):
                assert message.note in sounding
                sounding.discard(message.note)
        note_ons = sum(1 for token in tokens if TOKENIZER.is_note_on(token))
        assert len(pretty_midi.PrettyMIDI(str(path)).instruments[0].notes) == note_ons


def test_g07_render_is_not_silent(runner, small_model, tmp_path):
    result = generate(runner, small_model, tmp_path / "out", "--seed", "C4 E4 G4", "--length", "32", "--num", "4",
                      "--random-seed", "1", "--device", "cpu")
    assert result.exit_code == 0, result.output

    for path in written_paths(result):
        rendered = runner.invoke(cli, ["render", str(path), "--output-dir", str(tmp_path / "wav"), "--no-fluidsynth"])

        assert rendered.exit_code == 0, rendered.output
        samples, _ = read_wav(Path(rendered.output.strip().splitlines()[-1]))
        assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 0.01  # RMS of a full-scale signal is up to 1


# -- step length and note durations ----------------------------------------------------


def notes_from_tokens(tokens: list[int]) -> list[tuple[int, int, int]]:
    """Return (pitch, start step, end step): each note lasts 1 + the HOLD steps right after its NOTE_ON."""
    notes: list[list[int]] = []
    for step, token in enumerate(tokens):
        if TOKENIZER.is_note_on(token):
            notes.append([TOKENIZER.pitch_of(token), step, step + 1])
        elif token == HOLD and notes and notes[-1][2] == step:
            notes[-1][2] = step + 1
    return [tuple(note) for note in notes]


@pytest.fixture
def grid_melody(runner, small_model, tmp_path) -> tuple[Path, list[int]]:
    result = generate(runner, small_model, tmp_path / "out", "--seed", "60,64,67", "--length", "16", "--tempo", "120",
                      "--random-seed", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return written_paths(result)[0], sampled_tokens(small_model, "60,64,67", 16, 1, 3)[0]


def test_g08_notes_on_grid_without_overlap(grid_melody):
    path, _ = grid_melody
    step = mido.MidiFile(path).ticks_per_beat // 4
    notes = read_notes(path)
    assert notes
    for _, start, end, _ in notes:
        assert start % step == 0
        assert end % step == 0
    for previous, current in zip(notes, notes[1:]):
        assert current[1] >= previous[2]


def test_g08_durations_follow_holds(grid_melody):
    path, tokens = grid_melody
    step = mido.MidiFile(path).ticks_per_beat // 4
    written = [(pitch, start // step, end // step) for pitch, start, end, _ in read_notes(path)]
    assert written == notes_from_tokens(tokens)


def test_g08_four_four_bar_and_end_time(grid_melody):
    path, _ = grid_melody
    signatures = meta_events(path, "time_signature")
    assert [(tick, message.numerator, message.denominator) for tick, message in signatures] == [(0, 4, 4)]
    end = max(note.end for note in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes)
    assert end <= (3 + 16) * 0.125 + 1e-9


def test_g08_tokenizing_output_gives_tokens_back(grid_melody):
    path, tokens = grid_melody
    # The file ends with the last note, so trailing rest steps leave no trace in it.
    while tokens and tokens[-1] == REST:
        tokens = tokens[:-1]
    assert file_tokens(path) == tokens


def test_g08_note_name_seed_one_step_each(runner, small_model, tmp_path):
    result = generate(runner, small_model, tmp_path / "out", "--seed", "C4 E4 G4", "--length", "16", "--random-seed", "3")

    assert result.exit_code == 0, result.output
    notes = read_notes(written_paths(result)[0])
    assert [(pitch, start, end) for pitch, start, end, _ in notes[:2]] == [(60, 0, STEP_TICKS), (64, STEP_TICKS, 2 * STEP_TICKS)]
    assert notes[2][:2] == (67, 2 * STEP_TICKS)


# -- tempo and meter of the seed -----------------------------------------------------------


@pytest.fixture
def waltz_seed(tmp_path) -> Path:
    """90 BPM (666,667 µs per quarter) in 3/4: D4 dotted half, then F#4 A4 D5 quarters; 2 bars, 24 steps."""
    notes = [(62, 0, 1440), (66, 1440, 1920), (69, 1920, 2400), (74, 2400, 2880)]
    return write_seed_file(tmp_path / "waltz_90.mid", notes, tempo=666_667, meter=(3, 4))


@pytest.mark.parametrize(("seed", "args", "tempo", "meter", "logged"), [
    ("waltz", [], 666_667, (3, 4), "tempo 90 BPM from the seed, meter 3/4 from the seed"),
    ("waltz", ["--tempo", "100"], 600_000, (3, 4), "tempo 100 BPM from --tempo, meter 3/4 from the seed"),
    ("D4 F#4 A4", [], 500_000, (4, 4), None),
])
def test_g09_tempo_and_meter_written(runner, small_model, tmp_path, waltz_seed, seed, args, tempo, meter, logged):
    seed_arg = str(waltz_seed) if seed == "waltz" else seed

    result = generate(runner, small_model, tmp_path / "out", "--seed", seed_arg, "--length", "24", "--random-seed", "1", *args)

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    assert [(tick, message.tempo) for tick, message in meta_events(path, "set_tempo")] == [(0, tempo)]
    signatures = meta_events(path, "time_signature")
    assert [(tick, message.numerator, message.denominator) for tick, message in signatures] == [(0, *meter)]
    assert all(start % STEP_TICKS == 0 for _, start, _, _ in read_notes(path))
    if logged:
        assert logged in result.output
    for settings in (sidecar(path), embedded_settings(path)):
        assert round(60_000_000 / settings["tempo_bpm"]) == tempo
        assert settings["time_signature"] == f"{meter[0]}/{meter[1]}"


def test_g09_waltz_seed_fills_bars_of_twelve_steps(runner, small_model, tmp_path, waltz_seed):
    result = generate(runner, small_model, tmp_path / "out", "--seed", str(waltz_seed), "--length", "24", "--random-seed", "1")

    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    bar_ticks = 3 * mido.MidiFile(path).ticks_per_beat
    assert bar_ticks == 12 * STEP_TICKS
    assert file_tokens(path)[:24] == held(62, 12) + held(66, 4) + held(69, 4) + held(74, 4)


# -- training files shorter than the window ----------------------------------------------


@pytest.fixture
def short3(tmp_path) -> Path:
    """Three files of 8 quarter notes (32 steps) each."""
    folder = tmp_path / "short3"
    folder.mkdir()
    for name, pitches in [
        ("up.mid", [60, 62, 64, 65, 67, 69, 71, 72]),
        ("down.mid", [72, 71, 69, 67, 65, 64, 62, 60]),
        ("arpeggio.mid", [60, 64, 67, 72, 67, 64, 60, 64]),
    ]:
        write_seed_file(folder / name, quarter_notes(pitches))
    return folder


def test_g10_short_files_are_padded(runner, short3, tmp_path):
    output = tmp_path / "s.pt"

    result = train(runner, short3, output, "--seq-len", "64", "--epochs", "1")

    assert result.exit_code == 0, result.output
    assert output.is_file()
    row = metrics_rows(output)[0]
    assert math.isfinite(float(row["train_loss"]))
    assert math.isfinite(float(row["val_loss"]))


def test_g10_padding_log_counts_all_files(runner, short3, tmp_path):
    result = train(runner, short3, tmp_path / "s.pt", "--seq-len", "64", "--epochs", "1")

    assert "3 files shorter than --seq-len 64 were padded" in result.output


def test_g10_window_shorter_than_files(runner, short3, tmp_path):
    output = tmp_path / "s16.pt"

    result = train(runner, short3, output, "--seq-len", "16", "--epochs", "1")

    assert result.exit_code == 0, result.output
    assert output.is_file()


def test_g10_short_files_among_bach(runner, short3, tmp_path):
    folder = copy_melodies(tmp_path / "mixed", 10_000)
    bach_count = len(list(folder.glob("*.mid")))
    for path in short3.iterdir():
        shutil.copy(path, folder / f"short_{path.name}")
    output = tmp_path / "mixed.pt"

    result = train(runner, folder, output, "--seq-len", "64", "--epochs", "1", "--hidden-size", "16", "--layers", "1")

    assert result.exit_code == 0, result.output
    assert f"read {bach_count + 3} files" in result.output
    assert "skipped 0" in result.output
    assert "shorter than --seq-len 64" in result.output
    assert math.isfinite(float(metrics_rows(output)[0]["train_loss"]))


# -- empty validation set, batch larger than the data ------------------------------------


def eight_bar_melodies(folder: Path, count: int) -> list[Path]:
    """Write `count` bundled melodies cut to 8 bars of 4/4 (128 steps), skipping any with a rest at the cut."""
    from musicgen.midi_io import read_score

    folder.mkdir(parents=True, exist_ok=True)
    cut = 8 * BAR_TICKS
    written = []
    for source in sorted(BACH_MELODIES.glob("*.mid")):
        score = read_score(source)
        if score.ticks_per_quarter != PPQ or score.end_tick < cut:
            continue
        notes = [(note.pitch, note.start_tick, min(note.end_tick, cut)) for note in score.pitched_notes if note.start_tick < cut]
        if max(end for _, _, end in notes) != cut:
            continue
        written.append(write_seed_file(folder / source.name, notes))
        if len(written) == count:
            return written
    pytest.fail(f"fewer than {count} bundled melodies last 8 bars")


def test_g11_two_files_give_one_validation_file(runner, tmp_path):
    folder = tmp_path / "two"
    eight_bar_melodies(folder, 2)
    output = tmp_path / "t.pt"

    result = train(runner, folder, output, "--epochs", "2", "--seq-len", "32")

    assert result.exit_code == 0, result.output
    assert "1 train file, 1 validation file" in result.output
    rows = metrics_rows(output)
    assert len(rows) == 2
    assert all(math.isfinite(float(row["val_loss"])) for row in rows)
    assert "ZeroDivisionError" not in result.output


def test_g11_one_file_disables_validation(runner, tmp_path):
    folder = tmp_path / "one"
    eight_bar_melodies(folder, 1)
    output = tmp_path / "o.pt"

    result = train(runner, folder, output, "--epochs", "2", "--seq-len", "32")

    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "validation is disabled" in line]
    assert len(warnings) == 1
    assert "only one" in warnings[0]
    assert torch.load(output, weights_only=True)["best_by"] == "training_loss"
    for row in metrics_rows(output):
        assert row["val_loss"] == ""
        assert row["perplexity"] == ""
        assert row["bits_per_note"] == ""
        assert row["note_accuracy"] == ""
        assert math.isfinite(float(row["train_loss"]))


def test_g11_batch_larger_than_windows(runner, tmp_path):
    folder = tmp_path / "two"
    eight_bar_melodies(folder, 2)
    output = tmp_path / "b.pt"

    result = train(runner, folder, output, "--epochs", "2", "--seq-len", "32", "--batch-size", "512")

    assert result.exit_code == 0, result.output
    rows = metrics_rows(output)
    # The step counter counts batches, so one partial batch per epoch gives steps 1 and 2.
    assert [int(row["step"]) for row in rows] == [1, 2]
    assert all(math.isfinite(float(row["train_loss"])) for row in rows)


def test_g11_deleted_files_are_not_cached(runner, tmp_path):
    folder = tmp_path / "two"
    eight_bar_melodies(folder, 2)
    output = tmp_path / "t.pt"
    assert train(runner, folder, output, "--epochs", "2", "--seq-len", "32").exit_code == 0
    checkpoint = output.read_bytes()
    for path in folder.iterdir():
        path.unlink()

    # The same command first stops at the existing checkpoint; with --overwrite it reaches the folder.
    repeated = train(runner, folder, output, "--epochs", "2", "--seq-len", "32")
    overwrite = train(runner, folder, output, "--epochs", "2", "--seq-len", "32", "--overwrite")

    assert "already exists" in one_line_error(repeated)
    assert "no MIDI files (.mid or .midi) found" in one_line_error(overwrite)
    assert output.read_bytes() == checkpoint


# -- non-ASCII and invalid UTF-8 file names ------------------------------------------------


UNICODE_NAMES = ["F\u00fcr Elise \u2013 Bagatelle.mid", "\u4e2d\u6587\u65cb\u5f8b.mid", "\uc544\ub9ac\ub791.MID",
                 "O'Neill's jig #3.midi"]
LATIN1_NAME = b"caf\xe9.mid"  # invalid UTF-8: é in Latin-1


def unicode_folder(parent: Path) -> Path:
    """Five copies of one bundled melody under non-ASCII names, one of them not valid UTF-8."""
    folder = parent / "donn\u00e9es musicales"
    folder.mkdir(parents=True)
    melody = sorted(BACH_MELODIES.glob("*.mid"))[0].read_bytes()
    for name in UNICODE_NAMES:
        (folder / name).write_bytes(melody)
    with open(os.fsencode(folder) + b"/" + LATIN1_NAME, "wb") as stream:
        stream.write(melody)
    return folder


def test_g12_unicode_names_in_process(runner, tmp_path):
    folder = unicode_folder(tmp_path)
    model = tmp_path / "\ubaa8\ub378" / "m.pt"
    output_dir = tmp_path / "\uc0dd\uc131 \uacb0\uacfc"

    trained = train(runner, folder, model, "--epochs", "1")
    generated = generate(runner, model, output_dir, "--seed", str(folder / UNICODE_NAMES[1]), "--random-seed", "1")

    assert trained.exit_code == 0, trained.output
    assert "read 5 files" in trained.output
    assert "skipped 0" in trained.output
    assert model.is_file()
    assert generated.exit_code == 0, generated.output
    assert UNICODE_NAMES[1] in generated.output
    assert [path.parent for path in written_paths(generated)] == [output_dir]


@pytest.mark.parametrize("environment", [{"LC_ALL": "C"}, {"PYTHONIOENCODING": "ascii"}], ids=["lc_all_c", "ascii_io"])
def test_g12_unicode_names_limited_console(tmp_path, environment):
    folder = unicode_folder(tmp_path)
    model = tmp_path / "\ubaa8\ub378" / "m.pt"
    output_dir = tmp_path / "\uc0dd\uc131 \uacb0\uacfc"
    env = {**os.environ, **environment}
    command = [sys.executable, "-m", "musicgen"]

    trained = subprocess.run([*command, "train", str(folder), "--output", str(model), "--epochs", "1", "--no-progress"],
                             capture_output=True, env=env, timeout=300, check=False)
    generated = subprocess.run([*command, "generate", "--model", str(model), "--seed", str(folder / UNICODE_NAMES[1]),
                                "--output-dir", str(output_dir), "--random-seed", "1"],
                               capture_output=True, env=env, timeout=300, check=False)

    train_log = trained.stderr.decode("utf-8", "replace")
    generate_log = generated.stderr.decode("utf-8", "replace")
    assert trained.returncode == 0, train_log
    assert "read 5 files" in train_log
    assert "skipped 0" in train_log
    assert model.is_file()
    assert generated.returncode == 0, generate_log
    assert len(list(output_dir.glob("*.mid"))) == 1
    for log in (train_log, generate_log):
        assert "UnicodeEncodeError" not in log
        assert "UnicodeDecodeError" not in log
        assert "Traceback" not in log
    # The seed's name is shown as is, or escaped where the console cannot encode it.
    assert UNICODE_NAMES[1] in generate_log or "\\u4e2d\\u6587\\u65cb\\u5f8b" in generate_log


# -- very long generation ----------------------------------------------------------------


_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
completed = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
seconds = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"returncode": completed.returncode, "seconds": seconds, "peak_kb": peak_kb,
                  "stderr": completed.stderr.decode("utf-8", "replace")[-2000:]}))
"""


def measure_generate(model: Path, output_dir: Path, length: int) -> dict:
    """Run one generate in a fresh wrapper process; returns its wall time and the peak RSS of that run alone."""
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "musicgen", "generate", "--model", str(model),
               "--seed", "C4", "--length", str(length), "--random-seed", "1", "--output-dir", str(output_dir)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    measured = json.loads(completed.stdout)
    assert measured["returncode"] == 0, measured["stderr"]
    return measured


def test_g13_long_generation_is_linear(small_model, tmp_path):
    short, long = 4_000, 40_000
    startup = measure_generate(small_model, tmp_path / "one", 1)
    first = measure_generate(small_model, tmp_path / "short", short)
    second = measure_generate(small_model, tmp_path / "long", long)
    print(f"generate --length 1: {startup['seconds']:.2f} s, {startup['peak_kb'] / 1024:.0f} MB; "
          f"{short}: {first['seconds']:.2f} s, {first['peak_kb'] / 1024:.0f} MB; "
          f"{long}: {second['seconds']:.2f} s, {second['peak_kb'] / 1024:.0f} MB")

    # Ten times the steps may take at most 15 times as long, start-up excluded.
    assert second["seconds"] - startup["seconds"] < 15 * max(first["seconds"] - startup["seconds"], 0.1)
    assert abs(second["peak_kb"] - first["peak_kb"]) < 64 * 1024
    path = next((tmp_path / "long").glob("*.mid"))
    assert sidecar(path)["seed_steps"] + sidecar(path)["length_steps"] == 1 + long
    end = max(note.end for note in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes)
    assert end <= (1 + long) * 0.125 + 1e-6


def test_g13_huge_length_fails_at_once(runner, small_model, tmp_path):
    output_dir = tmp_path / "out"
    started = time.perf_counter()

    line = one_line_error(generate(runner, small_model, output_dir, "--seed", "C4", "--length", "1000000000"))

    assert time.perf_counter() - started < 10
    assert "requested length is 1000000000 steps; it must be 1..1000000 steps" in line
    assert "at most 1,000,000" in runner.invoke(cli, ["generate", "--help"]).output
    assert no_files_in(output_dir)


def test_g13_many_melodies_in_one_batch(runner, small_model, tmp_path):
    result = generate(runner, small_model, tmp_path / "out", "--seed", "C4", "--num", "64", "--length", "512",
                      "--random-seed", "1")

    assert result.exit_code == 0, result.output
    paths = written_paths(result)
    assert len(set(paths)) == 64
    for path in paths:
        settings = sidecar(path)
        assert settings["seed_steps"] == 1
        assert settings["length_steps"] == 512
        assert max(end for _, _, end, _ in read_notes(path)) <= 513 * STEP_TICKS


# -- checkpoints saved on a GPU ------------------------------------------------------------


def relabel_storages_as_cuda(source: Path, destination: Path) -> Path:
    """Copy a checkpoint with every tensor storage marked as saved from cuda:0.

    torch.save records each storage's device as a string in data.pkl. Rewriting 'cpu'
    to 'cuda:0' gives the file a CUDA-saved checkpoint has, so torch.load fails on a
    CPU-only machine unless it maps the tensors to the CPU.
    """
    cpu = b"X\x03\x00\x00\x00cpu"  # the pickle opcode for a short unicode string, its length, 'cpu'
    cuda = b"X\x06\x00\x00\x00cuda:0"
    with zipfile.ZipFile(source) as reader, zipfile.ZipFile(destination, "w", zipfile.ZIP_STORED) as writer:
        for item in reader.infolist():
            data = reader.read(item)
            if item.filename.endswith("/data.pkl"):
                assert cpu in data
                data = data.replace(cpu, cuda)
            writer.writestr(item, data)
    return destination


def test_g14_cpu_copy_and_cuda_saved_checkpoint_agree(runner, small_model, tmp_path):
    cpu_copy = tmp_path / "cpu_copy.pt"
    torch.save(torch.load(small_model, map_location="cpu", weights_only=True), cpu_copy)
    gpu_trained = relabel_storages_as_cuda(small_model, tmp_path / "gpu_trained.pt")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(gpu_trained, weights_only=True)

    paths = []
    for model in (gpu_trained, cpu_copy):
        result = generate(runner, model, tmp_path / model.stem, "--seed", "C4 E4 G4", "--length", "64",
                          "--random-seed", "5", "--device", "cpu")
        assert result.exit_code == 0, result.output
        paths.append(written_paths(result)[0])

    assert read_notes(paths[0]) == read_notes(paths[1])
    settings = [sidecar(path) for path in paths]
    assert settings[0].pop("model") != settings[1].pop("model")
    assert settings[0] == settings[1]


def test_g14_cuda_request_without_cuda(runner, small_model, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cpu_copy = tmp_path / "cpu_copy.pt"
    torch.save(torch.load(small_model, map_location="cpu", weights_only=True), cpu_copy)
    output_dir = tmp_path / "out"

    line = one_line_error(generate(runner, cpu_copy, output_dir, "--seed", "C4 E4 G4", "--device", "cuda"))

    assert "--device cuda requested but no CUDA device is available; use --device cpu or omit --device" in line
    assert no_files_in(output_dir)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_g14_gpu_trained_checkpoint_on_cpu(runner, small_model, tmp_path):
    folder = copy_melodies(tmp_path / "melodies", 40)
    gpu_trained = tmp_path / "gpu_trained.pt"
    trained = train(runner, folder, gpu_trained, "--epochs", "1", "--hidden-size", "32", "--layers", "1", "--device", "cuda")
    assert trained.exit_code == 0, trained.output
    cpu_copy = tmp_path / "cpu_copy.pt"
    torch.save(torch.load(gpu_trained, map_location="cpu", weights_only=True), cpu_copy)

    on_cpu = [generate(runner, model, tmp_path / model.stem, "--seed", "C4 E4 G4", "--length", "64",
                       "--random-seed", "5", "--device", "cpu") for model in (gpu_trained, cpu_copy)]
    on_cuda = generate(runner, cpu_copy, tmp_path / "cuda", "--seed", "C4 E4 G4", "--length", "64", "--device", "cuda")

    assert all(result.exit_code == 0 for result in on_cpu), [result.output for result in on_cpu]
    assert read_notes(written_paths(on_cpu[0])[0]) == read_notes(written_paths(on_cpu[1])[0])
    assert on_cuda.exit_code == 0, on_cuda.output
