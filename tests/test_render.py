"""musicgen render and generate --wav/--png/--musicxml: audio level and length, pictures and scores that open."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from musicgen.cli import cli
from musicgen.render import PEAK_LIMIT_DBFS, TAIL_SECONDS, TARGET_RMS_DBFS, read_wav, render_wav

from test_evaluate import one_line_error, write_notes
from test_stats import write_melody

HAS_FLUIDSYNTH = shutil.which("fluidsynth") is not None


@pytest.fixture
def three_notes(tmp_path) -> Path:
    """C4, E4 and G4, half a second each at 120 BPM: the last note ends at 1.5 s."""
    return write_notes(tmp_path / "three.mid", [(60, 0.0, 0.5), (64, 0.5, 1.0), (67, 1.0, 1.5)])


def check_level(samples: np.ndarray) -> None:
    """Neither clipped (peak at most the limit) nor silent (RMS within 6 dB of the target, or peak-limited)."""
    peak = float(np.abs(samples).max())
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    assert peak <= 10 ** (PEAK_LIMIT_DBFS / 20) + 1e-4
    assert peak < 32767 / 32768
    assert rms > 10 ** ((TARGET_RMS_DBFS - 6) / 20) or peak > 10 ** ((PEAK_LIMIT_DBFS - 0.1) / 20)


def test_sine_fallback_wav(three_notes, tmp_path, caplog):
    wav = tmp_path / "sine.wav"
    with caplog.at_level("INFO", logger="musicgen.render"):
        audio = render_wav(three_notes, wav, use_fluidsynth=False)
    assert audio.synthesizer == "pretty_midi sine waves"
    assert any("sine waves" in record.getMessage() for record in caplog.records)
    samples, rate = read_wav(wav)
    assert rate == 44_100
    assert len(samples) == round((1.5 + TAIL_SECONDS) * rate)
    check_level(samples)
    # The notes sound in the first 1.5 s; the tail after the sine waves stop is quiet.
    assert np.abs(samples[: rate]).max() > 0.1


@pytest.mark.skipif(not HAS_FLUIDSYNTH, reason="fluidsynth is not installed (make audio-deps)")
def test_fluidsynth_wav(three_notes, tmp_path):
    audio = render_wav(three_notes, tmp_path / "fluid.wav")
    assert audio.synthesizer == "fluidsynth"
    samples, rate = read_wav(tmp_path / "fluid.wav")
    assert samples.shape == (round((1.5 + TAIL_SECONDS) * rate), 2)
    check_level(samples)


def test_loud_input_is_not_clipped(tmp_path):
    # A dense chord of 12 notes at full velocity sums far above full scale before normalizing.
    notes = [(pitch, 0.0, 1.0) for pitch in range(60, 72)]
    wav = tmp_path / "chord.wav"
    render_wav(write_notes(tmp_path / "chord.mid", notes), wav, use_fluidsynth=False)
    check_level(read_wav(wav)[0])


def test_existing_wav_is_kept(three_notes, tmp_path):
    wav = tmp_path / "three.wav"
    wav.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        render_wav(three_notes, wav, use_fluidsynth=False)
    assert wav.read_bytes() == b"keep me"


def test_render_command_writes_png_and_musicxml(runner, tmp_path):
    import matplotlib.image
    from music21 import converter

    import pretty_midi

    # F major, in 3/4: F4, Bb4, A4 quarters, a C5 dotted half, then 16ths D5, B4 and G#4 (not in the scale).
    notes = [(65, 0, 4), (70, 4, 8), (69, 8, 12), (72, 12, 24), (74, 24, 25), (71, 25, 26), (68, 26, 27)]
    midi = write_melody(tmp_path / "tune.mid", notes, signatures=((3, 4, 0),))
    with_key = pretty_midi.PrettyMIDI(str(midi))
    with_key.key_signature_changes.append(pretty_midi.KeySignature(pretty_midi.key_name_to_key_number("F major"), 0.0))
    with_key.write(str(midi))
    result = runner.invoke(cli, ["render", str(midi), "--png", "--musicxml", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "out" / "tune.png"), str(tmp_path / "out" / "tune.musicxml")]

    image = matplotlib.image.imread(tmp_path / "out" / "tune.png")
    assert image.ndim == 3
    assert image.shape[0] > 100
    assert image.shape[1] > 100

    score = converter.parse(tmp_path / "out" / "tune.musicxml").stripTies()
    parsed = [(n.pitch.midi, float(n.offset) * 4, float(n.quarterLength) * 4) for n in score.flatten().notes]
    assert parsed == [(p, s, e - s) for p, s, e in notes]
    # In a key with flats, a pitch outside the scale takes a flat (A-flat), and a white key stays natural (B).
    assert [n.pitch.name for n in score.flatten().notes] == ["F", "B-", "A", "C", "D", "B", "A-"]
    assert score.flatten().getElementsByClass("KeySignature")[0].sharps == -1
    assert score.flatten().getElementsByClass("TimeSignature")[0].ratioString == "3/4"


def test_generate_png_colours_the_seed(runner, small_model, tmp_path):
    import matplotlib.image

    from musicgen.pianoroll import GENERATED_COLOUR, SEED_COLOUR

    result = runner.invoke(cli, ["generate", "--model", str(small_model), "--seed", "C4:8 E4:8", "--length", "32",
                                 "--random-seed", "1", "--output-dir", str(tmp_path), "--png", "--musicxml",
                                 "--wav", "--no-fluidsynth"])
    assert result.exit_code == 0, result.output
    stem = tmp_path / "melody-001"
    assert result.stdout.split() == [str(stem.with_suffix(s)) for s in (".mid", ".wav", ".png", ".musicxml")]
    pixels = matplotlib.image.imread(stem.with_suffix(".png"))[..., :3].reshape(-1, 3)
    for colour in (SEED_COLOUR, GENERATED_COLOUR):
        rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).max(axis=1) < 0.02).sum() > 100, colour
    samples, rate = read_wav(stem.with_suffix(".wav"))
    check_level(samples)
    # 16 seed steps and 32 generated steps of 0.125 s, plus the tail.
    settings = json.loads(stem.with_suffix(".json").read_text())
    assert settings["seed_steps"] == 16
    assert len(samples) <= round((48 * 0.125 + TAIL_SECONDS) * rate)


def test_render_defaults_to_wav(runner, three_notes):
    result = runner.invoke(cli, ["render", str(three_notes), "--no-fluidsynth"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(three_notes.with_suffix(".wav"))]


def test_render_refuses_existing_output(runner, three_notes):
    three_notes.with_suffix(".png").write_bytes(b"keep me")
    line = one_line_error(runner.invoke(cli, ["render", str(three_notes), "--png"]))
    assert "three.png already exists" in line
    assert three_notes.with_suffix(".png").read_bytes() == b"keep me"


def test_render_missing_file(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["render", str(tmp_path / "none.mid"), "--png"]))
    assert "not found" in line
    assert "none.mid" in line


def test_render_drums_with_sine_fallback_is_an_error(runner, tmp_path):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(velocity=100, pitch=36, start=0.0, end=0.5)]
    midi.instruments.append(drums)
    midi.write(str(tmp_path / "drums.mid"))
    line = one_line_error(runner.invoke(cli, ["render", str(tmp_path / "drums.mid"), "--no-fluidsynth"]))
    assert "silent" in line
    assert "drums" in line


@pytest.mark.parametrize(("midi_pitch", "tonic", "mode", "expected"), [
    (61, "D", "major", "C#4"),  # in the scale of D major
    (61, "F", "major", "D-4"),  # outside the scale, in a key with flats
    (64, "B-", "major", "E4"),  # a white key outside the scale stays natural
    (70, "D", "minor", "B-4"),  # the sixth of D minor
    (63, "E", "major", "D#4"),  # the leading tone of E major
    (72, "D-", "major", "C5"),
])
def test_spell_in_key(midi_pitch, tonic, mode, expected):
    from music21 import key

    from musicgen.score_export import spell

    spelled = spell(midi_pitch, key.Key(tonic, mode))
    assert spelled.nameWithOctave == expected
    assert spelled.midi == midi_pitch


def test_requested_key_beats_estimate():
    from musicgen.melody_file import MelodyFile
    from musicgen.score_export import choose_key

    # C major triad notes, but the sidecar says the model was asked for A minor.
    melody = MelodyFile(Path("m.mid"), [(60, 0, 4), (64, 4, 8), (67, 8, 16)], 4, [(0, 4, 4)], 120.0,
                        key_name="A minor")
    assert str(choose_key(melody)) == "a minor"
    melody.key_name = "Bb major"
    assert choose_key(melody).sharps == -2
    melody.key_name = "not a key"
    assert str(choose_key(melody)) == "C major"
