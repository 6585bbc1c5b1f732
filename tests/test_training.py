"""Training on real melodies: the loss falls, validation beats the unigram baseline, checkpoints are sound."""

from __future__ import annotations

import csv
import math

import pretty_midi
import pytest
import torch

from musicgen.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from musicgen.cli import cli
from musicgen.config import ConfigError, ModelConfig, TrainConfig
from musicgen.data.corpus import encode_folder, split_by_file
from musicgen.data.dataset import cut_windows
from musicgen.tokenizer import MelodyTokenizer
from musicgen.training import train
from tests.conftest import copy_melodies


@pytest.fixture(scope="module")
def melody_corpus(tmp_path_factory):
    folder = copy_melodies(tmp_path_factory.mktemp("bach"), 150)
    return encode_folder(folder, MelodyTokenizer(), show_progress=False)


def test_loss_falls_and_beats_unigram(melody_corpus, tmp_path):
    tokenizer = MelodyTokenizer()
    model_config = ModelConfig(tokenizer.vocab_size, "lstm", hidden_size=128, layers=1, dropout=0.1)
    config = TrainConfig(epochs=6, seq_len=64, batch_size=32, lr=3e-3, random_seed=3)
    result = train(melody_corpus, tokenizer, model_config, config, tmp_path / "m.pt", show_progress=False)
    losses = [record.train_loss for record in result.epochs]
    assert losses[-1] < 0.7 * losses[0]
    best = result.best.validation
    assert best is not None and result.baseline is not None
    assert best.bits_per_note < result.baseline.bits_per_note
    assert best.note_accuracy > result.baseline.note_accuracy
    payload = read_checkpoint(tmp_path / "m.pt")
    assert payload["epoch"] == result.best.epoch
    assert payload["metrics"]["bits_per_note"] == pytest.approx(best.bits_per_note)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_each_cell_trains_and_reloads(melody_corpus, tmp_path, cell):
    tokenizer = MelodyTokenizer()
    output = tmp_path / f"{cell}.pt"
    model_config = ModelConfig(tokenizer.vocab_size, cell, hidden_size=32, layers=2)
    result = train(melody_corpus, tokenizer, model_config, TrainConfig(epochs=2, seq_len=32), output, show_progress=False)
    assert math.isfinite(result.best.train_loss)
    model, loaded_tokenizer, payload = load_model(output, torch.device("cpu"))
    assert model.config.cell == cell
    assert loaded_tokenizer == tokenizer
    assert payload["train_config"]["seq_len"] == 32
    # Plain tensors and JSON-like values only: weights_only loading needs no allow-list.
    torch.load(output, weights_only=True)


def test_no_temporary_files_left(melody_corpus, tmp_path):
    tokenizer = MelodyTokenizer()
    train(melody_corpus, tokenizer, ModelConfig(tokenizer.vocab_size, hidden_size=16, layers=1),
          TrainConfig(epochs=2, seq_len=32), tmp_path / "m.pt", show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.config.toml", "m.last.pt", "m.loss.png", "m.metrics.csv", "m.pt",
    ]


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "keep.pt"
    save_checkpoint(path, {"value": torch.ones(2)})
    before = path.read_bytes()

    class Unsaveable:
        pass

    with pytest.raises(Exception):
        save_checkpoint(path, {"value": Unsaveable(), "bad": lambda: None})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]


def test_truncated_checkpoint_is_rejected(small_model, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(small_model.read_bytes()[: 5000])
    with pytest.raises(CheckpointError, match="broken.pt is not a musicgen checkpoint"):
        read_checkpoint(broken)


def test_split_by_file_keeps_duplicates_together(melody_corpus):
    files = melody_corpus.files[:20]
    duplicated = files + [files[0].__class__(files[0].path.with_name("copy.mid"), files[0].ids, files[0].notes)]
    train_files, validation_files = split_by_file(duplicated, 0.1, seed=0)
    assert len(train_files) + len(validation_files) == 21
    sides = [("copy.mid" in str(f.path) or f.path == files[0].path) for f in validation_files]
    assert sum(sides) in (0, 2)
    assert len(validation_files) >= 1


def test_windows_shape_and_padding(melody_corpus):
    tokenizer = MelodyTokenizer()
    files = melody_corpus.files[:5]
    windows = cut_windows(files, 16, tokenizer.pad_id)
    assert windows.shape[1] == 17
    # Every token but each file's BOS is a target exactly once.
    targets = int((windows[:, 1:] != tokenizer.pad_id).sum())
    assert targets == sum(len(f.ids) - 1 for f in files)


def _write_melody(path, pitches, quarter=0.5):
    midi = pretty_midi.PrettyMIDI(resolution=480)
    instrument = pretty_midi.Instrument(0)
    instrument.notes = [pretty_midi.Note(80, p, i * quarter, (i + 1) * quarter) for i, p in enumerate(pitches)]
    midi.instruments.append(instrument)
    midi.write(str(path))


def _short3(folder):
    folder.mkdir()
    _write_melody(folder / "up.mid", [60, 62, 64, 65, 67, 69, 71, 72])
    _write_melody(folder / "down.mid", [72, 71, 69, 67, 65, 64, 62, 60])
    _write_melody(folder / "arpeggio.mid", [60, 64, 67, 72, 67, 64, 60, 64])
    return folder


def test_files_shorter_than_window_are_padded(runner, tmp_path, caplog):
    folder = _short3(tmp_path / "short3")
    output = tmp_path / "s.pt"
    result = runner.invoke(cli, ["train", str(folder), "--output", str(output), "--seq-len", "64", "--epochs", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 files shorter than --seq-len 64 were padded" in caplog.text
    assert math.isfinite(read_checkpoint(output)["metrics"]["train_loss"])


def test_two_files_give_one_validation_file(runner, tmp_path, caplog):
    folder = _short3(tmp_path / "two")
    (folder / "arpeggio.mid").unlink()
    result = runner.invoke(cli, ["train", str(folder), "--output", str(tmp_path / "t.pt"), "--epochs", "2",
                                 "--seq-len", "32", "--batch-size", "512", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "1 train file, 1 validation file" in caplog.text
    rows = list(csv.DictReader(open(tmp_path / "t.metrics.csv", encoding="utf-8")))
    assert len(rows) == 2
    assert all(math.isfinite(float(row["val_loss"])) and int(row["step"]) > 0 for row in rows)


def test_one_file_disables_validation(runner, tmp_path, caplog):
    folder = _short3(tmp_path / "one")
    (folder / "arpeggio.mid").unlink()
    (folder / "down.mid").unlink()
    result = runner.invoke(cli, ["train", str(folder), "--output", str(tmp_path / "o.pt"), "--epochs", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "validation is disabled" in caplog.text
    assert read_checkpoint(tmp_path / "o.pt")["best_by"] == "training_loss"
    rows = list(csv.DictReader(open(tmp_path / "o.metrics.csv", encoding="utf-8")))
    assert [row["val_loss"] for row in rows] == ["", ""]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 0, r"epochs must be in 1\.\.100000 \(received 0\)"),
    ("lr", -1.0, r"lr must be in \(0, 10\] \(received -1.0\)"),
    ("validation_fraction", 0.95, r"validation_fraction must be in 0.0\.\.0.9 \(received 0.95\)"),
])
def test_train_config_errors(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


def test_model_config_rejects_unknown_cell():
    with pytest.raises(ConfigError, match="cell must be one of lstm, gru, rnn"):
        ModelConfig(66, cell="transformer")
