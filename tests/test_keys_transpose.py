"""Transposition to C, key tokens, and transposition augmentation of training windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musicgen.checkpoint import read_checkpoint
from musicgen.cli import cli
from musicgen.data.augment import TranspositionAugmenter, TranspositionError, parse_interval_range
from musicgen.data.ingest import IngestOptions, ingest_records
from musicgen.data.transpose import shift_to_c, transpose_score, transposed_key
from musicgen.keys import KEY_NAMES
from musicgen.midi_io import read_score
from musicgen.score import KeySignature, Note, Score
from musicgen.tokenizer import EventTokenizer, MelodyTokenizer
from tests.conftest import copy_melodies
from tests.test_cli import one_line_error

TPQ = 480


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train on one thread: on busy shared cores, torch's threads wait on each other at every small step."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(("key", "shift"), [
    ("C major", 0), ("A minor", 0), ("D major", -2), ("G major", 5), ("F# major", -6), ("B major", 1),
    ("D minor", -5), ("E minor", 5), ("C minor", -3), ("Eb minor", 6 - 12),
])
def test_shift_to_c(key, shift):
    assert shift_to_c(key) == shift
    assert transposed_key(key, shift) in ("C major", "A minor")


def test_every_key_reaches_c_or_a():
    for key in KEY_NAMES:
        assert -6 <= shift_to_c(key) <= 5
        assert transposed_key(key, shift_to_c(key)) == ("A minor" if key.endswith("minor") else "C major")


def test_transpose_score_moves_pitches_and_signature():
    score = Score(TPQ, [Note(62, 80, 0, TPQ), Note(38, 80, 0, TPQ, channel=9), Note(126, 80, 0, TPQ)],
                  key_signatures=[KeySignature(0, 2)])  # D major: two sharps
    moved = transpose_score(score, -2)
    assert [note.pitch for note in moved.notes] == [60, 38, 124]  # the drum note keeps its key number
    assert moved.key_signatures == [KeySignature(0, 0)]
    assert transpose_score(score, 4).notes[2].pitch == 118  # 130 is beyond 127, so an octave lower
    assert score.notes[0].pitch == 62  # the source is unchanged


def test_transposed_signature_spelling():
    # B major (5 sharps) up one semitone is C major; F major (1 flat) up one is F# major (6 sharps).
    assert transpose_score(Score(TPQ, key_signatures=[KeySignature(0, 5)]), 1).key_signatures[0].sharps_flats == 0
    assert transpose_score(Score(TPQ, key_signatures=[KeySignature(0, -1)]), 1).key_signatures[0].sharps_flats == 6


def test_ingest_transposes_to_c(tmp_path):
    folder = copy_melodies(tmp_path / "midi", 4)
    tokenizer = MelodyTokenizer()
    result = ingest_records(folder, tokenizer, IngestOptions(workers=1, cache_dir=None, transpose_to_c=True,
                                                             show_progress=False))
    for record in result.records:
        shift = shift_to_c(record.meta["source_key"])
        assert record.meta["transposed"] == shift
        assert record.meta["key"] in ("C major", "A minor")
        assert record.ids.tolist() == tokenizer.encode(transpose_score(read_score(record.path), shift))


def test_key_token_follows_bos(tmp_path):
    folder = copy_melodies(tmp_path / "midi", 3)
    tokenizer = MelodyTokenizer(key_tokens=True)
    result = ingest_records(folder, tokenizer, IngestOptions(workers=1, cache_dir=None, show_progress=False))
    for record in result.records:
        assert record.ids[0] == tokenizer.bos_id
        assert tokenizer.key_of(int(record.ids[1])) == record.meta["key"]
        # The key token takes no grid step: decoding skips it.
        plain = MelodyTokenizer().encode(record.path)
        assert tokenizer.decode_notes(record.ids.tolist()) == MelodyTokenizer().decode_notes(plain)


def test_melody_key_tokens_sit_before_notes():
    tokenizer = MelodyTokenizer(key_tokens=True)
    assert tokenizer.vocabulary[5] == "KEY_C_major"
    assert tokenizer.vocabulary[tokenizer.first_note_on_id] == "NOTE_ON_36"
    assert tokenizer.note_on_ids[0] == tokenizer.first_note_on_id == 29
    assert MelodyTokenizer().first_note_on_id == 5


# --- augmentation ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("-5,6", (-5, 6)), ("-5..6", (-5, 6)), ("0,0", (0, 0)), (" -12 , 12", (-12, 12))])
def test_parse_interval_range(text, expected):
    assert parse_interval_range(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("3,5", r"LOW must be in -12\.\.0 and HIGH in 0\.\.12 \(received 3 and 5\)"),
    ("-13,2", r"received -13 and 2"),
    ("five", r"expected two whole semitone counts"),
    ("-1,2,3", r"expected two whole semitone counts"),
])
def test_parse_interval_range_errors(text, message):
    with pytest.raises(TranspositionError, match=message):
        parse_interval_range(text)


def test_augmenter_moves_whole_windows_within_range():
    tokenizer = EventTokenizer(pitch_low=48, pitch_high=72)
    ids = tokenizer.encode(Score(TPQ, [Note(60, 80, 0, 120), Note(64, 80, 120, 240), Note(72, 80, 240, 360)]))
    windows = torch.tensor([ids, ids[::-1]], dtype=torch.long)
    augment = TranspositionAugmenter(tokenizer, -5, 6)
    augment.fit(windows)
    # Pitch 72 is the top of the range, so only intervals -5..0 keep every note inside it.
    assert augment.allowed[0].tolist() == [True] * 6 + [False] * 6
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        moved, _ = augment(windows, torch.tensor([0, 1]))
        for row in range(2):
            before = [tokenizer.pitch_of(t) for t in windows[row].tolist() if tokenizer.vocabulary[t].startswith("NOTE")]
            after = [tokenizer.pitch_of(t) for t in moved[row].tolist() if tokenizer.vocabulary[t].startswith("NOTE")]
            shifts = {b - a for a, b in zip(before, after)}
            assert len(shifts) == 1
            assert -5 <= shifts.pop() <= 0
            seen.add(after[0] - before[0])
            others = [(a, b) for a, b in zip(windows[row].tolist(), moved[row].tolist())
                      if not tokenizer.vocabulary[a].startswith("NOTE")]
            assert all(a == b for a, b in others)
    assert seen == {-5, -4, -3, -2, -1, 0}


def test_augmenter_keeps_pad():
    tokenizer = MelodyTokenizer()
    windows = torch.tensor([[tokenizer.bos_id, tokenizer.note_on_id(60), tokenizer.eos_id, tokenizer.pad_id]])
    augment = TranspositionAugmenter(tokenizer, -3, 3)
    augment.fit(windows)
    moved, _ = augment(windows, torch.tensor([0]))
    assert moved[0, 3] == tokenizer.pad_id
    assert moved[0, 0] == tokenizer.bos_id


class RecordingAugmenter(TranspositionAugmenter):
    """The real augmenter, also keeping the shape of every batch it moved."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.batches: list[int] = []
        self.fitted = 0

    def fit(self, windows: torch.Tensor) -> None:
        self.fitted = len(windows)
        super().fit(windows)

    def __call__(self, batch: torch.Tensor, indices: torch.Tensor, conditions: torch.Tensor | None = None):
        self.batches.append(len(indices))
        return super().__call__(batch, indices, conditions)


def test_training_transposes_training_windows_only(tmp_path):
    from musicgen.config import ModelConfig, TrainConfig
    from musicgen.data.corpus import encode_folder
    from musicgen.data.dataset import cut_windows
    from musicgen.data.corpus import split_by_file
    from musicgen.training import train

    folder = copy_melodies(tmp_path / "midi", 12)
    tokenizer = MelodyTokenizer()
    corpus = encode_folder(folder, tokenizer, show_progress=False)
    config = TrainConfig(epochs=2, seq_len=32, batch_size=16, validation_fraction=0.25, device="cpu")
    augment = RecordingAugmenter(tokenizer, -2, 2)
    model_config = ModelConfig(tokenizer.vocab_size, hidden_size=16, layers=1, embedding_size=8)
    result = train(corpus, tokenizer, model_config, config, tmp_path / "m.pt", show_progress=False, augment=augment)
    training, validation = split_by_file(corpus.files, config.validation_fraction, config.random_seed)
    assert validation
    # Every batch drawn was moved, and together they are the training windows of two epochs, no more.
    assert augment.fitted == len(cut_windows(training, config.seq_len, tokenizer.pad_id))
    assert sum(augment.batches) == 2 * augment.fitted
    assert result.augmentation == {"transpose_low": -2, "transpose_high": 2}
    assert read_checkpoint(tmp_path / "m.pt")["data"]["transpose_low"] == -2


# --- command line ----------------------------------------------------------------------


def test_train_cli_with_transposition_options(runner, tmp_path):
    folder = copy_melodies(tmp_path / "midi", 8)
    output = tmp_path / "model.pt"
    result = runner.invoke(cli, [
        "train", str(folder), "--output", str(output), "--epochs", "1", "--hidden-size", "16", "--layers", "1",
        "--seq-len", "32", "--no-progress", "--transpose=-5,6", "--transpose-to-c", "--key-tokens", "--workers", "1",
    ])
    assert result.exit_code == 0, result.output
    payload = read_checkpoint(output)
    assert payload["data"]["transpose_to_c"] is True
    assert (payload["data"]["transpose_low"], payload["data"]["transpose_high"]) == (-5, 6)
    assert payload["tokenizer"]["config"]["key_tokens"] is True
    # Every piece was moved to C major or A minor, so only those two key tokens were counted.
    counts = np.asarray(payload["token_counts"])
    tokenizer = MelodyTokenizer(key_tokens=True)
    used = {tokenizer.vocabulary[index] for index in np.flatnonzero(counts) if index in tokenizer.key_ids}
    assert used <= {"KEY_C_major", "KEY_A_minor"}


def test_train_cli_rejects_bad_transpose(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["train", str(tmp_path), "--output", str(tmp_path / "m.pt"),
                                              "--transpose=2,5"]))
    assert "invalid --transpose '2,5'" in line
    assert "received 2 and 5" in line


def test_train_cli_transpose_rejects_first_note_condition(runner, tmp_path):
    result = runner.invoke(cli, ["train", str(tmp_path), "--output", str(tmp_path / "m.pt"), "--transpose=-1,1",
                                 "--mode", "one-to-many", "--condition", "key,first-note"])
    assert result.exit_code != 0
    assert "--transpose cannot be combined with --condition first-note" in result.output


def test_augmenter_moves_the_key_condition_with_the_notes():
    tokenizer = MelodyTokenizer()
    # G major melody (G4 B4 D5) with key row "G major" and a style column that must not move.
    windows = torch.tensor([[tokenizer.bos_id, *(tokenizer.note_on_id(pitch) for pitch in (67, 71, 74)), tokenizer.eos_id]])
    keys = list(KEY_NAMES)
    conditions = torch.tensor([[3, keys.index("G major")]])
    augment = TranspositionAugmenter(tokenizer, -5, 6)
    augment.fit(windows)
    augment.transpose_keys(1, keys)
    torch.manual_seed(0)
    seen = set()
    for _ in range(60):
        moved, moved_conditions = augment(windows, torch.tensor([0]), conditions)
        shift = tokenizer.pitch_of(int(moved[0, 1])) - 67
        seen.add(shift)
        assert keys[int(moved_conditions[0, 1])] == transposed_key("G major", shift)
        assert int(moved_conditions[0, 0]) == 3
    assert conditions.tolist() == [[3, keys.index("G major")]]  # the stored rows never change
    assert seen == set(range(-5, 7))


def test_key_model_trains_with_transposition(runner, tmp_path):
    folder = copy_melodies(tmp_path / "midi", 8)
    output = tmp_path / "key.pt"
    result = runner.invoke(cli, ["train", str(folder), "--output", str(output), "--mode", "one-to-many",
                                 "--condition", "key", "--transpose=-5,6", "--max-steps", "4", "--hidden-size", "16",
                                 "--layers", "1", "--seq-len", "32", "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    payload = read_checkpoint(output)
    assert len(payload["model_config"]["keys"]) == 24  # every key a transposition reaches has its own row
    generated = runner.invoke(cli, ["generate", "--model", str(output), "--key", "F# major", "--length", "16",
                                    "--output-dir", str(tmp_path / "out")])
    assert generated.exit_code == 0, generated.output


def test_event_model_generates_from_text_seed(runner, tmp_path):
    folder = copy_melodies(tmp_path / "midi", 8)
    output = tmp_path / "event.pt"
    trained = runner.invoke(cli, ["train", str(folder), "--output", str(output), "--epochs", "1", "--hidden-size", "16",
                                  "--layers", "1", "--seq-len", "32", "--no-progress", "--tokenizer", "event"])
    assert trained.exit_code == 0, trained.output
    generated = runner.invoke(cli, ["generate", "--model", str(output), "--seed", "C4:4 E4:4 G4:8", "--length", "40",
                                    "--random-seed", "3", "--output-dir", str(tmp_path / "out")])
    assert generated.exit_code == 0, generated.output
    written = Path(generated.output.strip().splitlines()[-1])
    # The seed comes back first: C4 for a quarter note at the file's start.
    first = read_score(written).notes[0]
    assert (first.pitch, first.start_tick) == (60, 0)
    assert first.end_tick - first.start_tick == read_score(written).ticks_per_quarter
