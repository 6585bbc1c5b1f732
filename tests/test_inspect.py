"""The inspection commands: musicgen inspect MIDI_DIR and musicgen tokenize FILE."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from musicgen.cli import cli
from musicgen.midi_io import read_score
from musicgen.tokenizer import EventTokenizer, MelodyTokenizer
from tests.conftest import BACH_MELODIES, MIDI_DATA, copy_melodies
from tests.test_cli import one_line_error

CHORALE = MIDI_DATA / "bach_chorales" / "bwv1.6.mid"


@pytest.fixture
def mixed_folder(tmp_path: Path, edge_dir: Path) -> Path:
    """Five Bach melodies, one of them twice, and four edge files that are skipped."""
    folder = copy_melodies(tmp_path / "mixed", 5)
    shutil.copy(sorted(BACH_MELODIES.glob("*.mid"))[0], folder / "copy-of-first.mid")
    for name in ("not_really_midi.mid", "no_notes.mid", "drums_only.mid", "trailing_garbage.mid"):
        shutil.copy(edge_dir / name, folder / name)
    return folder


def test_inspect_summary(runner, mixed_folder):
    result = runner.invoke(cli, ["inspect", str(mixed_folder), "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "files: 10 found, 7 read, 3 skipped" in lines
    assert "  skipped 1: not a MIDI file" in lines
    assert "  skipped 1: no notes" in lines
    assert "  skipped 1: drums only" in lines
    assert "duplicates: 1 files with the same bytes as another, 1 read files with the same tokens as another" in lines
    assert "repairs: 1 read files needed repairs by the reader" in lines
    expected_notes = sum(len(read_score(path).pitched_notes) for path in mixed_folder.glob("*.mid")
                         if path.name not in ("not_really_midi.mid", "no_notes.mid", "drums_only.mid"))
    assert f"notes: {expected_notes:,} pitched notes in the files read" in lines
    keys = next(line for line in lines if line.startswith("keys (estimated): "))
    counts = [int(part.rsplit(" ", 1)[1]) for part in keys.removeprefix("keys (estimated): ").split(", ")]
    assert sum(counts) == 7


def test_inspect_verbose_names_files(runner, mixed_folder):
    result = runner.invoke(cli, ["inspect", str(mixed_folder), "--no-progress", "--verbose", "--no-keys", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "    not_really_midi.mid: not a MIDI file: no MThd header" in result.output
    assert "    drums_only.mid: drums only" in result.output
    assert "    trailing_garbage.mid: ignored 6 bytes after the last chunk" in result.output
    assert "keys: not estimated (--no-keys)" in result.output


def test_inspect_event_tokens_and_pitch_range(runner, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(CHORALE, folder)
    result = runner.invoke(cli, ["inspect", str(folder), "--no-progress", "--tokenizer", "event", "--no-keys"])
    assert result.exit_code == 0, result.output
    tokens = len(EventTokenizer().encode(CHORALE))
    pitches = [note.pitch for note in read_score(CHORALE).pitched_notes]
    assert f"tokens: {tokens:,} (event tokenizer, 259 token vocabulary)" in result.output
    assert f"pitch range: {min(pitches)}..{max(pitches)}" in result.output


def test_inspect_missing_folder(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["inspect", str(tmp_path / "nowhere")]))
    assert "MIDI folder not found" in line


def test_tokenize_prints_names(runner):
    result = runner.invoke(cli, ["tokenize", str(CHORALE)])
    assert result.exit_code == 0, result.output
    stdout = result.stdout.split()
    assert stdout == MelodyTokenizer().token_names(MelodyTokenizer().encode(CHORALE))
    assert f"{CHORALE}: " in result.stderr


def test_tokenize_ids(runner):
    result = runner.invoke(cli, ["tokenize", str(CHORALE), "--tokenizer", "event", "--ids"])
    assert result.exit_code == 0, result.output
    assert [int(word) for word in result.stdout.split()] == EventTokenizer().encode(CHORALE)


@pytest.mark.parametrize("tokenizer", ["melody", "event"])
def test_tokenize_decode_writes_back(runner, tmp_path, tokenizer):
    out = tmp_path / "back.mid"
    result = runner.invoke(cli, ["tokenize", str(CHORALE), "--tokenizer", tokenizer, "--decode", str(out)])
    assert result.exit_code == 0, result.output
    encoder = MelodyTokenizer() if tokenizer == "melody" else EventTokenizer()
    # The written file encodes to the same tokens: the decoding keeps what the tokens hold.
    assert encoder.encode(out) == encoder.encode(CHORALE)


def test_tokenize_decode_refuses_existing_file(runner, tmp_path):
    out = tmp_path / "taken.mid"
    out.write_bytes(b"mine")
    line = one_line_error(runner.invoke(cli, ["tokenize", str(CHORALE), "--decode", str(out)]))
    assert "taken.mid already exists" in line
    assert out.read_bytes() == b"mine"


def test_tokenize_with_model_tokenizer(runner, small_model):
    result = runner.invoke(cli, ["tokenize", str(CHORALE), "--model", str(small_model)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split()[0] == "BOS"


@pytest.mark.parametrize(("arguments", "message"), [
    (["tokenize", "{edge}/drums_only.mid"], "drums_only.mid gives no tokens: drums only"),
    (["tokenize", "{edge}/not_really_midi.mid"], "not_really_midi.mid: not a MIDI file: no MThd header"),
    (["tokenize", "{edge}/missing.mid"], "cannot read"),
])
def test_tokenize_bad_files(runner, edge_dir, arguments, message):
    line = one_line_error(runner.invoke(cli, [argument.format(edge=edge_dir) for argument in arguments]))
    assert message in line


def test_tokenize_event_option_needs_event(runner):
    result = runner.invoke(cli, ["tokenize", str(CHORALE), "--velocity-bins", "8"])
    assert result.exit_code != 0
    assert "--velocity-bins applies to --tokenizer event only" in result.output


def test_tokenize_bad_config(runner):
    line = one_line_error(runner.invoke(cli, ["tokenize", str(CHORALE), "--pitch-low", "60", "--pitch-high", "65"]))
    assert "`pitch_high` must be in 71..127 (received 65)" in line
