"""The one-to-many model, its conditions (key, style, first note) and key estimation.

Model shapes and sampling determinism are checked on small untrained models of every
cell in both modes. The CLI tests share one model trained briefly on two styles: Bach
chorale melodies and O'Neill's Irish tunes, each in its own sub-folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

from musicgen.checkpoint import load_model
from musicgen.cli import cli
from musicgen.conditions import condition_row, conditioned_config, label_files
from musicgen.config import ConfigError, ModelConfig, TrainConfig
from musicgen.data.corpus import encode_folder
from musicgen.keys import KEY_NAMES, KeyNameError, estimate_key, parse_key, scale_pitch_classes
from musicgen.models import MelodyRNN, OneToManyConfig, OneToManyRNN, build_model, model_config_from_dict
from musicgen.sampling import beam_search, sample_continuations
from musicgen.score import KeySignature, Note, Score
from musicgen.tokenizer import MelodyTokenizer
from musicgen.training import train
from tests.conftest import MIDI_DATA

TOKENIZER = MelodyTokenizer()
CELLS = ("lstm", "gru", "rnn")
STYLE_FILES = 40  # files per style in the shared two-style model


MODES = ("many-to-many", "one-to-many", "one-to-many start only")


def small_config(mode: str, cell: str) -> ModelConfig:
    """Return a tiny config; "one-to-many start only" conditions through the start state alone."""
    shape = {"vocab_size": TOKENIZER.vocab_size, "cell": cell, "embedding_size": 8, "hidden_size": 16, "layers": 2}
    if mode == "many-to-many":
        return ModelConfig(**shape)
    return OneToManyConfig(**shape, conditions=["key", "style"], keys=["D major", "A minor"], styles=["bach", "oneills"],
                           condition_each_step=mode == "one-to-many")


def recurrent_part(model: MelodyRNN, state):
    """Return the recurrent state alone, without the per-step condition input of a one-to-many state."""
    each_step = isinstance(model, OneToManyRNN) and model.config.condition_each_step
    return state[0] if each_step else state


def untrained_model(mode: str, cell: str) -> MelodyRNN:
    torch.manual_seed(0)
    return build_model(small_config(mode, cell)).eval()


def generate(runner, model: Path, output_dir: Path, *args: str):
    return runner.invoke(cli, ["generate", "--model", str(model), "--output-dir", str(output_dir), *args])


def written_paths(result) -> list[Path]:
    return [Path(line) for line in result.stdout.splitlines() if line.endswith(".mid")]


def one_line_error(result) -> str:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


# -- model shapes and determinism, both modes and all cells ---------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_forward_shapes(mode, cell):
    model = untrained_model(mode, cell)
    tokens = torch.randint(0, TOKENIZER.vocab_size, (3, 7))
    state = model.start_state(torch.tensor([[0, 1], [1, 0], [0, 0]])) if mode != "many-to-many" else None

    logits, final = model(tokens, state)

    assert logits.shape == (3, 7, TOKENIZER.vocab_size)
    if mode == "one-to-many":
        assert final[1].shape == (1, 3, 8)  # the per-step condition input, batch in dimension 1
    final = recurrent_part(model, final)
    parts = final if cell == "lstm" else (final,)
    assert len(parts) == (2 if cell == "lstm" else 1)
    for part in parts:
        assert part.shape == (2, 3, 16)


@pytest.mark.parametrize("mode", MODES[1:])
@pytest.mark.parametrize("cell", CELLS)
def test_condition_sets_start_state(mode, cell):
    model = untrained_model(mode, cell)
    state = recurrent_part(model, model.start_state(torch.tensor([[0, 0], [0, 1], [1, 0], [0, 0]])))
    hidden = state[0] if cell == "lstm" else state

    assert torch.equal(hidden[:, 0], hidden[:, 3])  # same condition, same state
    assert not torch.allclose(hidden[:, 0], hidden[:, 1])  # another style
    assert not torch.allclose(hidden[:, 0], hidden[:, 2])  # another key
    if cell == "lstm":
        assert state[1].shape == state[0].shape
        assert not torch.allclose(state[0], state[1])  # c0 is its own mapping, not a copy of h0


def test_one_to_many_needs_a_start_state():
    model = untrained_model("one-to-many", "gru")
    with pytest.raises(ValueError, match="needs its start state"):
        model(torch.zeros((1, 3), dtype=torch.long))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_sampling_is_deterministic(mode, cell):
    model = untrained_model(mode, cell)
    row = [1, 0] if mode != "many-to-many" else None
    seed_ids = [TOKENIZER.note_on_id(62), TOKENIZER.hold_id]

    def run(random_seed: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(random_seed)
        return sample_continuations(model, TOKENIZER, seed_ids, 40, 3, 1.0, generator, top_k=20, condition_row=row)

    first, again, other = run(5), run(5), run(6)
    assert [len(melody) for melody in first] == [40, 40, 40]
    assert first == again
    assert first != other
    beams = beam_search(model, TOKENIZER, seed_ids, 40, beam_size=3, num=2, condition_row=row)
    assert beams == beam_search(model, TOKENIZER, seed_ids, 40, beam_size=3, num=2, condition_row=row)


@pytest.mark.parametrize("mode", MODES[1:])
def test_condition_reaches_late_steps(mode):
    model = untrained_model(mode, "gru")
    tokens = torch.randint(3, TOKENIZER.vocab_size, (1, 200), generator=torch.Generator().manual_seed(2)).expand(2, -1)
    with torch.no_grad():
        logits, _ = model(tokens, model.start_state(torch.tensor([[0, 0], [0, 1]])))
    difference = (logits[0] - logits[1]).abs().amax(dim=-1)  # per step, over the vocabulary

    assert difference[0] > 1e-3
    if mode == "one-to-many":
        assert difference[-1] > 1e-3  # the condition joins every step's input


def test_model_config_round_trip():
    config = small_config("one-to-many", "gru")
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored["mode"] == "one-to-many"
    assert model_config_from_dict(stored) == config
    plain = small_config("many-to-many", "gru").to_dict()
    assert "mode" not in plain and type(model_config_from_dict(plain)) is ModelConfig
    with pytest.raises(ValueError, match="unknown model mode 'two-to-one'"):
        model_config_from_dict({**plain, "mode": "two-to-one"})


@pytest.mark.parametrize(("changes", "message"), [
    ({"conditions": ["tempo"]}, "conditions must be distinct values from key, style, first-note"),
    ({"conditions": []}, "conditions must be distinct values"),
    ({"conditions": ["key", "key"]}, "conditions must be distinct values"),
    ({"styles": []}, "a model conditioned on style needs at least one known style value"),
    ({"keys": ["H major"]}, "unknown key names ['H major']"),
])
def test_config_rejects_bad_conditions(changes, message):
    settings = {**small_config("one-to-many", "lstm").to_dict(), **changes}
    settings.pop("mode")
    with pytest.raises(ConfigError) as raised:
        OneToManyConfig(**settings)
    assert message in str(raised.value)


# -- keys ------------------------------------------------------------------------------------


def quarter_notes(pitches: list[int]) -> list[Note]:
    return [Note(pitch, 80, index * 480, (index + 1) * 480) for index, pitch in enumerate(pitches)]


D_MINOR_TUNE = [62, 64, 65, 67, 69, 70, 69, 65, 62, 61, 62, 69, 65, 62]
D_MAJOR_TUNE = [62, 66, 69, 74, 73, 71, 69, 66, 64, 62, 61, 62]


def test_twenty_four_key_names():
    assert len(KEY_NAMES) == 24 == len(set(KEY_NAMES))
    assert KEY_NAMES[2] == "D major" and KEY_NAMES[14] == "D minor"


@pytest.mark.parametrize(("text", "name"), [
    ("D minor", "D minor"), ("d min", "D minor"), ("  Bb   Major ", "Bb major"), ("A# major", "Bb major"),
    ("Gb major", "F# major"), ("E- major", "Eb major"), ("f\u266f minor", "F# minor"), ("Db minor", "C# minor"),
])
def test_parse_key(text, name):
    assert parse_key(text) == name


@pytest.mark.parametrize("text", ["H major", "D", "D dorian", "", "minor"])
def test_parse_key_rejects(text):
    with pytest.raises(KeyNameError, match="expected a tonic and major or minor, one of C major"):
        parse_key(text)


def test_scales():
    assert scale_pitch_classes("C major") == {0, 2, 4, 5, 7, 9, 11}
    assert scale_pitch_classes("D minor") == {2, 4, 5, 7, 9, 10, 0, 1}  # natural minor plus C#, the leading tone


def test_estimate_key_without_signature():
    assert estimate_key(quarter_notes(D_MINOR_TUNE)) == "D minor"
    assert estimate_key(Score(480, quarter_notes(D_MAJOR_TUNE))) == "D major"
    assert estimate_key([(60, 0, 4), (64, 4, 8), (67, 8, 16), (72, 16, 20)]) == "C major"
    with pytest.raises(ValueError, match="no pitched notes"):
        estimate_key([])


def test_estimate_key_trusts_a_fitting_signature():
    # Two sharps, minor: B minor, whose scale holds every note of the D major tune.
    signed = Score(480, quarter_notes(D_MAJOR_TUNE), key_signatures=[KeySignature(0, 2, minor=True)])
    assert estimate_key(signed) == "B minor"
    # No accidentals: C major's scale misses the tune's F# and C#, so the notes decide.
    wrong = Score(480, quarter_notes(D_MAJOR_TUNE), key_signatures=[KeySignature(0, 0)])
    assert estimate_key(wrong) == "D major"


# -- training and generating through the CLI -------------------------------------------------


def copy_style(source: str, destination: Path, count: int) -> None:
    destination.mkdir(parents=True)
    for path in sorted((MIDI_DATA / source).glob("*.mid"))[:count]:
        shutil.copy(path, destination / path.name)


@pytest.fixture(scope="module")
def style_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("styles")
    copy_style("bach_melodies", folder / "bach", STYLE_FILES)
    copy_style("oneills_1850", folder / "oneills", STYLE_FILES)
    return folder


def train_one_to_many(folder: Path, output: Path, condition: str, *args: str) -> Path:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, [
        "train", str(folder), "--output", str(output), "--mode", "one-to-many", "--condition", condition,
        "--layers", "1", "--seq-len", "64", "--lr", "5e-3", "--no-progress", "--random-seed", "1", *args,
    ])
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def style_model(style_folder, tmp_path_factory) -> Path:
    """A model conditioned on key and style, trained for moments: enough for the CLI paths, not for music."""
    output = tmp_path_factory.mktemp("one_to_many") / "key_style.pt"
    return train_one_to_many(style_folder, output, "key,style", "--epochs", "2", "--hidden-size", "32")


def test_checkpoint_stores_the_known_conditions(style_model):
    model, _, payload = load_model(style_model, torch.device("cpu"))
    assert isinstance(model, OneToManyRNN)
    stored = payload["model_config"]
    assert stored["mode"] == "one-to-many"
    assert stored["conditions"] == ["key", "style"]
    assert stored["styles"] == ["bach", "oneills"]
    assert set(stored["keys"]) <= set(KEY_NAMES) and "G major" in stored["keys"]
    torch.load(style_model, weights_only=True)


def test_generate_from_key_and_style_without_seed(style_model, runner, tmp_path):
    args = ["--key", "G major", "--style", "oneills", "--length", "64", "--num", "2", "--random-seed", "3"]
    first = generate(runner, style_model, tmp_path, *args)
    again = generate(runner, style_model, tmp_path, *args)
    assert first.exit_code == 0, first.output

    paths = written_paths(first)
    assert len(paths) == 2
    settings = sidecar(paths[0])
    expected = {"mode": "one-to-many", "key": "G major", "style": "oneills", "seed": None, "seed_steps": 0}
    assert {name: settings[name] for name in expected} == expected
    assert [path.read_bytes() for path in written_paths(again)] == [path.read_bytes() for path in paths]


def test_missing_condition_is_drawn_and_recorded(style_model, runner, tmp_path):
    result = generate(runner, style_model, tmp_path, "--style", "bach", "--length", "32", "--random-seed", "8")
    assert result.exit_code == 0, result.output
    settings = sidecar(written_paths(result)[0])
    assert settings["key"] in KEY_NAMES and settings["style"] == "bach"
    assert "no --key given: using " + settings["key"] in result.output


def test_seed_and_in_key_with_conditions(style_model, runner, tmp_path):
    result = generate(runner, style_model, tmp_path, "--key", "G major", "--style", "bach", "--seed", "C#4 D4:2",
                      "--in-key", "--length", "96", "--random-seed", "4", "--temperature", "1.5")
    assert result.exit_code == 0, result.output

    [path] = written_paths(result)
    tokens = TOKENIZER.encode(str(path), add_special_tokens=False)
    assert tokens[:3] == [TOKENIZER.note_on_id(61), TOKENIZER.note_on_id(62), TOKENIZER.hold_id]
    pitches = [pitch for pitch, _, _ in TOKENIZER.decode_notes(tokens)]
    assert {pitch % 12 for pitch in pitches[2:]} <= scale_pitch_classes("G major")
    assert sidecar(path)["in_key"] == "G major"


def test_unknown_key_lists_known_keys(style_model, runner, tmp_path):
    known = load_model(style_model, torch.device("cpu"))[0].config.keys
    unknown = next(name for name in KEY_NAMES if name not in known)
    line = one_line_error(generate(runner, style_model, tmp_path / "out", "--key", unknown, "--style", "bach"))
    assert f"--key '{unknown}' is unknown to this model; it knows keys {', '.join(known)}" in line
    assert not (tmp_path / "out").exists()


def test_unknown_style_lists_known_styles(style_model, runner, tmp_path):
    line = one_line_error(generate(runner, style_model, tmp_path / "out", "--key", "G major", "--style", "jazz"))
    assert "--style 'jazz' is unknown to this model; it knows styles bach, oneills" in line


def test_first_note_needs_that_condition(style_model, runner, tmp_path):
    line = one_line_error(generate(runner, style_model, tmp_path / "out", "--first-note", "D4"))
    assert "--first-note needs a model conditioned on first-note; this model is one-to-many, conditioned on key, style" in line


def test_train_rejects_bad_conditions(runner, style_folder, tmp_path):
    bad_kind = runner.invoke(cli, ["train", str(style_folder), "--output", str(tmp_path / "m.pt"),
                                   "--mode", "one-to-many", "--condition", "key,tempo"])
    assert "invalid --condition 'key,tempo': give one or more of key, style, first-note" in one_line_error(bad_kind)
    without_mode = runner.invoke(cli, ["train", str(style_folder), "--output", str(tmp_path / "m.pt"), "--condition", "key"])
    assert "--condition applies to --mode one-to-many only" in one_line_error(without_mode)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_trains_one_to_many_and_reloads(style_folder, tmp_path, cell):
    folder = tmp_path / "few"
    for style in ("bach", "oneills"):
        (folder / style).mkdir(parents=True)
        for path in sorted((style_folder / style).glob("*.mid"))[:6]:
            shutil.copy(path, folder / style / path.name)
    corpus = encode_folder(folder, TOKENIZER, show_progress=False)
    label_files(corpus, TOKENIZER, ["first-note", "style"], show_progress=False)
    config = conditioned_config(ModelConfig(TOKENIZER.vocab_size, cell, 8, 16, 2), ["first-note", "style"], corpus.files, TOKENIZER)
    result = train(corpus, TOKENIZER, config, TrainConfig(epochs=2, seq_len=32), tmp_path / "m.pt", show_progress=False)

    assert np.isfinite(result.best.train_loss) and result.best.validation is not None
    model, _, _ = load_model(tmp_path / "m.pt", torch.device("cpu"))
    assert isinstance(model, OneToManyRNN) and model.config.cell == cell
    row = condition_row(model.config, None, "oneills", model.config.first_notes[0])
    [melody] = sample_continuations(model, TOKENIZER, [], 16, 1, 1.0, torch.Generator().manual_seed(0), condition_row=row)
    assert len(melody) == 16


# -- the style condition steers the melody --------------------------------------------------


def pitch_histogram(pitches: list[int]) -> np.ndarray:
    counts = np.bincount(pitches, minlength=128).astype(np.float64)
    return counts / counts.sum()


def training_pitches(folder: Path) -> list[int]:
    pitches = []
    for path in sorted(folder.glob("*.mid")):
        pitches += [pitch for pitch, _, _ in TOKENIZER.decode_notes(TOKENIZER.encode(str(path)))]
    return pitches


def test_style_condition_steers_pitch_statistics(style_folder, tmp_path):
    """Melodies asked for in one style have a pitch histogram nearer that style's files than the other's.

    The two styles differ in their keys and register (O'Neill's tunes sit mostly in D and
    G major) and in how often a new pitch is struck, so the onset histograms of the
    training files are far apart (L1 distance about 0.4). The distance is measured
    over 16 melodies of 256 steps per style. A model trained with --condition-start-only
    fails this test: its Bach-style melodies come out nearer the O'Neill files.
    """
    model_path = train_one_to_many(style_folder, tmp_path / "style.pt", "style", "--epochs", "12", "--hidden-size", "64")
    model, tokenizer, _ = load_model(model_path, torch.device("cpu"))
    files = {style: pitch_histogram(training_pitches(style_folder / style)) for style in ("bach", "oneills")}

    for requested, other in (("bach", "oneills"), ("oneills", "bach")):
        row = condition_row(model.config, None, requested, None)
        melodies = sample_continuations(model, tokenizer, [], 256, 16, 1.0, torch.Generator().manual_seed(0), condition_row=row)
        generated = pitch_histogram([pitch for melody in melodies for pitch, _, _ in tokenizer.decode_notes(melody)])
        to_requested = np.abs(generated - files[requested]).sum()
        to_other = np.abs(generated - files[other]).sum()
        assert to_requested < to_other, (requested, to_requested, to_other)


@pytest.mark.parametrize("tokenizer_args", [["--tokenizer", "event"], ["--key-tokens"]])
def test_key_model_with_other_encodings(style_folder, runner, tmp_path, tokenizer_args):
    model = train_one_to_many(style_folder, tmp_path / "model.pt", "key", "--max-steps", "6", "--hidden-size", "16",
                              "--transpose=-2,2", *tokenizer_args)
    result = generate(runner, model, tmp_path / "out", "--key", "D minor", "--seed", "D4:4 F4:4 A4:8", "--bars", "2",
                      "--random-seed", "4")
    assert result.exit_code == 0, result.output

    path = written_paths(result)[0]
    settings = sidecar(path)
    assert settings["key"] == "D minor"
    assert settings["mode"] == "one-to-many"
    # The seed lasts one 4/4 bar (16 steps of the melody grid), so two more bars end at 3 bars.
    seconds_per_bar = 4 * 60 / settings["tempo_bpm"]
    assert pretty_midi.PrettyMIDI(str(path)).get_end_time() <= 3 * seconds_per_bar + 1e-6
    assert [note.pitch for note in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes[:3]] == [62, 65, 69]
