"""The command line end to end: generate from a trained model, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import pretty_midi
import pytest

from musicgen import __version__
from musicgen.cli import cli
from musicgen.notes import pitch_to_name
from tests.conftest import MIDI_DATA


def generate(runner, model, *args):
    return runner.invoke(cli, ["generate", "--model", str(model), *args])


def written_paths(result) -> list:
    from pathlib import Path

    return [Path(line) for line in result.stdout.splitlines() if line.endswith(".mid")]


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_python_m_help_runs():
    completed = subprocess.run([sys.executable, "-m", "musicgen", "--help"], capture_output=True, text=True, check=False)
    assert completed.returncode == 0
    assert "generate" in completed.stdout


def test_help_gives_units_and_defaults(runner):
    text = runner.invoke(cli, ["generate", "--help"]).output
    assert "Grid steps to generate after the seed" in text
    assert "default: 1.0" in text
    train_text = runner.invoke(cli, ["train", "--help"]).output
    assert "grid steps" in train_text and "default: 128" in train_text


def test_generate_starts_with_seed(runner, small_model, tmp_path):
    result = generate(runner, small_model, "--seed", "C4 - - - E4 - - - G4 - - -", "--length", "32",
                      "--num", "3", "--output-dir", str(tmp_path), "--random-seed", "4")
    assert result.exit_code == 0, result.output
    paths = written_paths(result)
    assert len(paths) == 3
    for path in paths:
        notes = pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
        assert [note.pitch for note in notes[:3]] == [60, 64, 67]
        # Each seed note lasts 4 steps of 0.125 s at 120 BPM.
        assert [round(note.end - note.start, 3) for note in notes[:2]] == [0.5, 0.5]
        assert path.with_suffix(".json").is_file()


def test_same_random_seed_gives_identical_files(runner, small_model, tmp_path):
    args = ["--seed", "60,64,67", "--length", "64", "--num", "2", "--output-dir", str(tmp_path)]
    first = written_paths(generate(runner, small_model, *args, "--random-seed", "1"))
    second = written_paths(generate(runner, small_model, *args, "--random-seed", "1"))
    other = written_paths(generate(runner, small_model, *args, "--random-seed", "2"))
    assert len(set(first + second + other)) == 6  # nothing overwritten
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]


def test_existing_files_are_never_overwritten(runner, small_model, tmp_path):
    (tmp_path / "melody-001.mid").write_bytes(b"keep me")
    result = generate(runner, small_model, "--seed", "C4", "--length", "8", "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "melody-001.mid").read_bytes() == b"keep me"
    assert written_paths(result) == [tmp_path / "melody-002.mid"]


def test_greedy_is_deterministic_without_random_seed(runner, small_model, tmp_path):
    args = ["--seed", "C4 E4", "--length", "32", "--temperature", "0", "--output-dir", str(tmp_path)]
    first = written_paths(generate(runner, small_model, *args))[0]
    second = written_paths(generate(runner, small_model, *args, "--random-seed", "99"))[0]
    # Only the recorded random seed differs, so compare the notes.
    notes = lambda path: [(n.pitch, n.start, n.end) for n in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes]  # noqa: E731
    assert notes(first) == notes(second)


def test_train_refuses_to_overwrite_checkpoint(runner, small_model, tmp_path):
    before = small_model.read_bytes()
    result = runner.invoke(cli, ["train", str(tmp_path), "--output", str(small_model)])
    assert result.exit_code != 0
    assert "already exists; pass --overwrite" in result.output
    assert small_model.read_bytes() == before


def one_line_error(result) -> str:
    """Return the 'Error: ...' line, checking there is exactly one and no traceback."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_train_missing_folder(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["train", str(tmp_path / "nope"), "--output", str(tmp_path / "m.pt")]))
    assert "MIDI folder not found" in line and "nope" in line


def test_train_folder_without_midi(runner, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    line = one_line_error(runner.invoke(cli, ["train", str(tmp_path), "--output", str(tmp_path / "m.pt")]))
    assert "no MIDI files (.mid or .midi) found" in line
    assert not (tmp_path / "m.pt").exists()


def test_train_folder_of_bad_files(runner, tmp_path, edge_dir):
    import shutil

    for name in ("not_really_midi.mid", "no_notes.mid", "drums_only.mid"):
        shutil.copy(edge_dir / name, tmp_path / name)
    result = runner.invoke(cli, ["train", str(tmp_path), "--output", str(tmp_path / "m.pt")])
    line = one_line_error(result)
    assert "none of the 3 MIDI files" in line
    assert "not_really_midi.mid: not a MIDI file: no MThd header" in result.output
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--seed", "C4 X9"], "invalid --seed token 'X9' (token 2)"),
    (["--seed", "C4", "--temperature", "-1"], "-1.0 is not in the range x>=0"),
    (["--seed", "C4", "--length", "0"], "0 is not in the range x>=1"),
    (["--seed", "C4", "--length", "1000000001"], "it must be 1..1000000 steps"),
    (["--seed", "C4", "--velocity", "0"], "0 is not in the range 1<=x<=127"),
    (["--seed", "C4", "--velocity", "128"], "128 is not in the range 1<=x<=127"),
    (["--seed", "C4", "--device", "cuda"], "no CUDA device is available; use --device cpu"),
])
def test_generate_bad_values(runner, small_model, tmp_path, args, expected):
    if "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    result = generate(runner, small_model, "--output-dir", str(tmp_path / "out"), *args)
    assert expected in one_line_error(result)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_generate_out_of_range_seed(runner, small_model, tmp_path):
    line = one_line_error(generate(runner, small_model, "--seed", "35,60,97", "--output-dir", str(tmp_path)))
    assert f"seed pitch 35 ({pitch_to_name(35)}) is outside this model's pitch range 36..96 (C2..C7)" in line
    assert list(tmp_path.iterdir()) == []


def test_generate_missing_model(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["generate", "--model", str(tmp_path / "gone.pt"), "--seed", "C4"]))
    assert "model file not found" in line and "gone.pt" in line


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_generate_file_that_is_not_a_checkpoint(runner, tmp_path, content):
    fake = tmp_path / "fake.pt"
    fake.write_bytes(content)
    line = one_line_error(runner.invoke(cli, ["generate", "--model", str(fake), "--seed", "C4"]))
    assert "fake.pt is not a musicgen checkpoint" in line


def test_generate_torch_file_of_other_kind(runner, tmp_path):
    import torch

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    line = one_line_error(runner.invoke(cli, ["generate", "--model", str(other), "--seed", "C4"]))
    assert "not a musicgen checkpoint (no 'musicgen-checkpoint' marker)" in line


def test_verbose_shows_traceback(runner, tmp_path):
    result = runner.invoke(cli, ["--verbose", "generate", "--model", str(tmp_path / "gone.pt"), "--seed", "C4"])
    assert result.exit_code != 0
    assert "Traceback" in result.output


def test_train_bad_folder_prints_only_the_error(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "musicgen", "train", str(tmp_path / "nope"), "--output",
                                str(tmp_path / "m.pt")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [f"Error: MIDI folder not found: {tmp_path / 'nope'}; check the path"]

    (tmp_path / "empty").mkdir()
    completed = subprocess.run([sys.executable, "-m", "musicgen", "train", str(tmp_path / "empty"), "--output",
                                str(tmp_path / "m.pt")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        f"Error: no MIDI files (.mid or .midi) found in {tmp_path / 'empty'}; point to a folder of MIDI files"]


def test_pickup_of_midi_seed_is_written(runner, small_model, tmp_path):
    import json

    import mido

    seed = MIDI_DATA / "bach_melodies" / "bwv1.6.mid"  # a quarter-note pickup bar in 1/4, then 4/4
    result = generate(runner, small_model, "--seed", str(seed), "--seed-bars", "1", "--bars", "1",
                      "--output-dir", str(tmp_path / "pickup"))
    assert result.exit_code == 0, result.output
    path = written_paths(result)[0]
    midi = mido.MidiFile(path)
    signatures = [(message.numerator, message.denominator) for track in midi.tracks for message in track
                  if message.type == "time_signature"]
    assert signatures == [(1, 4), (4, 4)]
    changes = []
    for track in midi.tracks:
        ticks = 0
        for message in track:
            ticks += message.time
            if message.type == "time_signature":
                changes.append(ticks)
    assert changes == [0, midi.ticks_per_beat]  # 4/4 starts after the one-beat pickup
    settings = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert (settings["pickup"], settings["time_signature"], settings["seed_steps"]) == ("1/4", "4/4", 4 + 16)

    plain = generate(runner, small_model, "--seed", "C4 E4 G4", "--length", "8", "--output-dir", str(tmp_path / "plain"))
    assert json.loads(written_paths(plain)[0].with_suffix(".json").read_text(encoding="utf-8"))["pickup"] is None
