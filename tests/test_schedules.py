"""Learning-rate and teacher-forcing schedules, early stopping, scheduled sampling and bf16 training."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from musicgen.config import ModelConfig, TrainConfig
from musicgen.data.corpus import encode_folder
from musicgen.models import build_model
from musicgen.scheduled_sampling import TrainingForward, unroll_with_own_samples
from musicgen.schedules import EarlyStopping, LearningRateSchedule, teacher_forcing_ratio
from musicgen.tokenizer import MelodyTokenizer
from musicgen.training import train
from tests.conftest import copy_melodies


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = copy_melodies(tmp_path_factory.mktemp("schedule_melodies"), 30)
    return encode_folder(folder, MelodyTokenizer(), show_progress=False)


def test_warmup_rises_linearly_to_lr():
    schedule = LearningRateSchedule("constant", lr=1.0, warmup_steps=4, total_steps=100)
    # Step s of the warm-up gets lr * (s + 1) / 4.
    assert [schedule.lr_at(step) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_decays_to_zero_at_last_step():
    schedule = LearningRateSchedule("cosine", lr=2.0, warmup_steps=10, total_steps=110)
    assert schedule.lr_at(10) == pytest.approx(2.0)
    # Half-way through the 100 decay steps, cos(pi / 2) = 0 leaves half the rate.
    assert schedule.lr_at(60) == pytest.approx(1.0)
    assert schedule.lr_at(110) == pytest.approx(0.0, abs=1e-12)
    rates = [schedule.lr_at(step) for step in range(10, 111)]
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))


def test_plateau_drops_after_patience_epochs():
    schedule = LearningRateSchedule("plateau", lr=1.0, warmup_steps=0, total_steps=10, plateau_factor=0.5, plateau_patience=2)
    for loss in (3.0, 2.0, 2.5, 2.1):  # two epochs without improvement: not yet
        schedule.end_epoch(loss)
    assert schedule.lr_at(5) == 1.0
    schedule.end_epoch(2.2)  # the third stalls it
    assert schedule.lr_at(5) == 0.5
    restored = LearningRateSchedule("plateau", lr=1.0, warmup_steps=0, total_steps=10)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr_at(5) == 0.5
    assert restored.best_loss == 2.0


def test_early_stopping_counts_stalled_epochs():
    stopping = EarlyStopping(patience=2)
    assert [stopping.end_epoch(loss) for loss in (3.0, 2.0, 2.0, 1.5, 1.6, 1.7)] == [False, False, False, False, False, True]
    assert not EarlyStopping(patience=0).end_epoch(9.0)
    assert not EarlyStopping(patience=1).end_epoch(None)


@pytest.mark.parametrize(("schedule", "middle"), [("constant", 1.0), ("linear", 0.6), ("inverse-sigmoid", 0.6)])
def test_teacher_forcing_schedules(schedule, middle):
    ratios = [teacher_forcing_ratio(schedule, 1.0, 0.2, progress / 10) for progress in range(11)]
    assert ratios[0] == pytest.approx(1.0)
    assert ratios[5] == pytest.approx(middle)
    assert ratios[-1] == pytest.approx(1.0 if schedule == "constant" else 0.2)
    assert all(later <= earlier for earlier, later in zip(ratios, ratios[1:]))


def test_inverse_sigmoid_stays_high_early():
    # Unlike the linear decay, the inverse sigmoid keeps most teacher forcing in the first fifth.
    linear = teacher_forcing_ratio("linear", 1.0, 0.0, 0.2)
    sigmoid = teacher_forcing_ratio("inverse-sigmoid", 1.0, 0.0, 0.2)
    assert linear == pytest.approx(0.8)
    assert sigmoid > 0.9


def always_same_token_model(vocab_size: int, token: int):
    """A tiny model whose softmax puts all mass on `token` at every step, whatever it reads."""
    model = build_model(ModelConfig(vocab_size, "gru", embedding_size=4, hidden_size=8, layers=1, dropout=0.0))
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.fill_(-1e4)
        model.output.bias[token] = 1e4
    return model


def test_ratio_zero_feeds_only_own_samples():
    tokenizer = MelodyTokenizer()
    own = tokenizer.note_on_id(60)
    model = always_same_token_model(tokenizer.vocab_size, own)
    inputs = torch.randint(tokenizer.note_on_id(62), tokenizer.note_on_id(72), (5, 12))

    logits, fed = unroll_with_own_samples(model, inputs, ratio=0.0)

    assert torch.equal(fed[:, 0], inputs[:, 0])  # the first input is always the true token
    assert bool((fed[:, 1:] == own).all())
    assert not bool((inputs[:, 1:] == own).any())
    # The logits are those of the model reading exactly the fed tokens.
    whole, _ = model(fed)
    assert torch.allclose(logits, whole, atol=1e-5)


def test_ratio_one_feeds_true_tokens():
    tokenizer = MelodyTokenizer()
    model = always_same_token_model(tokenizer.vocab_size, tokenizer.note_on_id(60))
    inputs = torch.randint(tokenizer.note_on_id(62), tokenizer.note_on_id(72), (3, 9))
    _, fed = unroll_with_own_samples(model, inputs, ratio=1.0)
    assert torch.equal(fed, inputs)
    # The training forward takes the whole-window path at ratio 1 and gives the same logits.
    forward = TrainingForward(model)
    assert torch.allclose(forward(inputs, ratio=1.0), unroll_with_own_samples(model, inputs, 1.0)[0], atol=1e-5)


def test_ratio_half_mixes_both():
    tokenizer = MelodyTokenizer()
    own = tokenizer.note_on_id(60)
    model = always_same_token_model(tokenizer.vocab_size, own)
    torch.manual_seed(0)
    inputs = torch.randint(tokenizer.note_on_id(62), tokenizer.note_on_id(72), (64, 33))
    _, fed = unroll_with_own_samples(model, inputs, ratio=0.5)
    share_own = float((fed[:, 1:] == own).float().mean())
    assert 0.4 < share_own < 0.6  # 2048 draws: the share is within 0.1 of 0.5 (more than 4 standard deviations)


def test_decaying_teacher_forcing_in_training(corpus, tmp_path):
    tokenizer = MelodyTokenizer()
    model_config = ModelConfig(tokenizer.vocab_size, "lstm", embedding_size=16, hidden_size=32, layers=1)
    config = TrainConfig(epochs=2, seq_len=16, batch_size=32, log_every=2, teacher_forcing_ratio=1.0,
                         teacher_forcing_schedule="linear", teacher_forcing_final=0.5,
                         lr_schedule="cosine", warmup_steps=3)
    result = train(corpus, tokenizer, model_config, config, tmp_path / "m.pt", show_progress=False)
    rows = list(csv.DictReader(open(tmp_path / "m.metrics.csv", encoding="utf-8")))
    ratios = [float(row["teacher_forcing_ratio"]) for row in rows if row["kind"] == "train"]
    rates = [float(row["lr"]) for row in rows if row["kind"] == "train"]
    assert ratios[0] > ratios[-1] >= 0.5
    assert rates[-1] < rates[1]
    assert all(math.isfinite(record.train_loss) for record in result.epochs)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bf16_validation_loss_within_two_percent(corpus, tmp_path, cell):
    tokenizer = MelodyTokenizer()
    losses = {}
    for precision in ("fp32", "bf16"):
        model_config = ModelConfig(tokenizer.vocab_size, cell, embedding_size=32, hidden_size=64, layers=1, dropout=0.0)
        config = TrainConfig(epochs=3, seq_len=32, batch_size=16, lr=3e-3, precision=precision)
        result = train(corpus, tokenizer, model_config, config, tmp_path / f"{precision}.pt", show_progress=False)
        losses[precision] = result.epochs[-1].validation.loss
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)
