"""musicgen evaluate: hand-computed bits per note, held-out selection, baselines and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

from musicgen.checkpoint import save_checkpoint
from musicgen.cli import cli
from musicgen.config import ModelConfig, TrainConfig
from musicgen.models import build_model
from musicgen.tokenizer.melody import MelodyTokenizer

from conftest import copy_melodies


def write_notes(path: Path, notes: list[tuple[int, float, float]]) -> Path:
    """Write (pitch, start s, end s) notes at 120 BPM, 480 ticks per quarter note."""
    midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    instrument = pretty_midi.Instrument(program=0)
    instrument.notes = [pretty_midi.Note(velocity=80, pitch=p, start=s, end=e) for p, s, e in notes]
    midi.instruments.append(instrument)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


def constant_checkpoint(path: Path, probabilities: np.ndarray, training_folder: Path, train_files: int) -> Path:
    """Save a model whose next-token distribution is `probabilities` whatever its input.

    The output layer's weights are zero and its bias is log(probabilities), so the softmax
    of the logits gives back `probabilities` at every step.
    """
    tokenizer = MelodyTokenizer()
    model = build_model(ModelConfig(tokenizer.vocab_size, "gru", 4, 4, 1, 0.0))
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.copy_(torch.from_numpy(np.log(probabilities)))
    save_checkpoint(path, {
        "model_state": model.state_dict(), "model_config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(), "train_config": TrainConfig().to_dict(), "epoch": 1, "step": 1,
        "metrics": {}, "token_counts": [1] * tokenizer.vocab_size,
        "data": {"folder": str(training_folder), "train_files": train_files, "validation_files": 0,
                 "validation_names": []},
    })
    return path


def evaluate_json(runner, *args) -> dict:
    result = runner.invoke(cli, ["evaluate", "--json", "--no-progress", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line_error(result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_bits_per_note_of_two_note_file(runner, tmp_path):
    tokenizer = MelodyTokenizer()
    # C4 and E4, a quarter note each: BOS, NOTE_ON_60, HOLD x3, NOTE_ON_64, HOLD x3, EOS.
    write_notes(tmp_path / "held_out" / "two.mid", [(60, 0.0, 0.5), (64, 0.5, 1.0)])
    probabilities = np.full(tokenizer.vocab_size, 0.25 / (tokenizer.vocab_size - 4))
    probabilities[tokenizer.hold_id] = 1 / 2  # 1 bit, 6 times
    probabilities[tokenizer.note_on_id(60)] = 1 / 8  # 3 bits
    probabilities[tokenizer.note_on_id(64)] = 1 / 16  # 4 bits
    probabilities[tokenizer.eos_id] = 1 / 16  # 4 bits
    assert probabilities.sum() == pytest.approx(1.0)
    training = copy_melodies(tmp_path / "training", 3)
    model = constant_checkpoint(tmp_path / "constant.pt", probabilities, training, 3)

    report = evaluate_json(runner, "--model", str(model), str(tmp_path / "held_out"))
    metrics = report["metrics"]["model"]
    # 6 x 1 + 3 + 4 + 4 = 17 bits over 9 predicted tokens and 2 notes.
    assert metrics["bits_per_note"] == pytest.approx(17 / 2, rel=1e-5)
    assert metrics["nll_per_token"] == pytest.approx(17 * math.log(2) / 9, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(2 ** (17 / 9), rel=1e-5)
    # NOTE_ON_60 is the most likely pitch: the first onset is a hit, the second a miss.
    assert metrics["note_accuracy"] == pytest.approx(0.5)
    assert report["held_out"] == {"source": "folder", "files": 1, "tokens": 9, "notes": 2, "duplicates_of_training": 0}
    assert report["training"]["files"] == 3


def test_training_folder_holds_out_validation_files(runner, small_model):
    payload = torch.load(small_model, weights_only=True)
    folder = Path(payload["data"]["folder"])
    report = evaluate_json(runner, "--model", str(small_model), str(folder))
    assert report["held_out"]["source"] == "validation"
    assert report["held_out"]["files"] == payload["data"]["validation_files"]
    assert report["training"]["files"] == payload["data"]["train_files"]
    assert report["held_out"]["duplicates_of_training"] == 0
    names = set(report["metrics"])
    assert names == {"model", "unigram", *(f"kneser-ney-{order}" for order in range(2, 9))}
    best = report["metrics"][f"kneser-ney-{report['best_ngram_order']}"]["bits_per_note"]
    assert report["ratio_to_best_ngram"] == pytest.approx(report["metrics"]["model"]["bits_per_note"] / best)
    # Even a few seconds of training beat token frequencies alone.
    assert report["metrics"]["model"]["bits_per_note"] < report["metrics"]["unigram"]["bits_per_note"]
    # The model's validation metrics stored at training time are the same numbers.
    assert report["metrics"]["model"]["bits_per_note"] == pytest.approx(payload["metrics"]["bits_per_note"], rel=1e-4)


def test_table_names_the_held_out_files(runner, small_model):
    folder = Path(torch.load(small_model, weights_only=True)["data"]["folder"])
    result = runner.invoke(cli, ["evaluate", "--no-progress", "--model", str(small_model), str(folder)])
    assert result.exit_code == 0, result.output
    assert "the checkpoint's 8 validation files" in result.stdout
    assert "<- best n-gram" in result.stdout
    assert "Kneser-Ney n=8" in result.stdout


def test_moved_training_folder_needs_train_dir(runner, tmp_path):
    tokenizer = MelodyTokenizer()
    probabilities = np.full(tokenizer.vocab_size, 1 / tokenizer.vocab_size)
    model = constant_checkpoint(tmp_path / "m.pt", probabilities, tmp_path / "gone", 3)
    held_out = copy_melodies(tmp_path / "held_out", 2)
    line = one_line_error(runner.invoke(cli, ["evaluate", "--model", str(model), str(held_out)]))
    assert "gone" in line
    assert "--train-dir" in line
    training = copy_melodies(tmp_path / "moved", 3)
    report = evaluate_json(runner, "--model", str(model), "--train-dir", str(training), str(held_out))
    # The held-out files are the first two of the three training files.
    assert report["held_out"]["duplicates_of_training"] == 2


def test_training_folder_without_validation_files(runner, tmp_path):
    tokenizer = MelodyTokenizer()
    training = copy_melodies(tmp_path / "training", 3)
    model = constant_checkpoint(tmp_path / "m.pt", np.full(tokenizer.vocab_size, 1 / tokenizer.vocab_size), training, 3)
    line = one_line_error(runner.invoke(cli, ["evaluate", "--model", str(model), str(training)]))
    assert "no validation files" in line


def test_missing_model_file(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["evaluate", "--model", str(tmp_path / "none.pt"), str(tmp_path)]))
    assert "model file not found" in line


def test_models_lists_checkpoints_with_ratio(runner, small_model, tmp_path):
    import shutil

    shutil.copy(small_model, tmp_path / "small.pt")
    folder = torch.load(small_model, weights_only=True)["data"]["folder"]
    report = evaluate_json(runner, "--model", str(tmp_path / "small.pt"), folder)
    (tmp_path / "small.evaluation.json").write_text(json.dumps(report))
    result = runner.invoke(cli, ["models", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("small.pt"))
    assert "lstm 1x64" in row
    assert f"{report['ratio_to_best_ngram']:.3f}" in row


def test_models_empty_folder(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["models", "--dir", str(tmp_path)]))
    assert "no checkpoints" in line


def test_event_model_baselines_count_the_same_notes(runner, tmp_path):
    training = copy_melodies(tmp_path / "training", 6)
    model = tmp_path / "event.pt"
    trained = runner.invoke(cli, ["train", str(training), "--output", str(model), "--tokenizer", "event",
                                  "--hidden-size", "32", "--layers", "1", "--max-steps", "3", "--batch-size", "4",
                                  "--seq-len", "32", "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert trained.exit_code == 0, trained.output
    write_notes(tmp_path / "held_out" / "two.mid", [(60, 0.0, 0.5), (64, 0.5, 1.0)])

    report = evaluate_json(runner, "--model", str(model), str(tmp_path / "held_out"))
    assert report["held_out"]["notes"] == 2
    tokens = report["held_out"]["tokens"]
    for name, metrics in report["metrics"].items():
        # bits per note is the file's NLL in bits over its 2 NOTE_ON tokens, for the model and every baseline.
        assert metrics["bits_per_note"] == pytest.approx(metrics["nll_per_token"] * tokens / math.log(2) / 2, rel=1e-4), name
        assert metrics["note_accuracy"] in (0.0, 0.5, 1.0), name
