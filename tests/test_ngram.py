"""Interpolated Kneser-Ney and unigram baselines: proper distributions and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from musicgen.data.corpus import encode_folder, split_by_file, token_counts
from musicgen.metrics import unigram_probabilities
from musicgen.ngram import KneserNeyModel, NgramCounts
from musicgen.tokenizer.melody import MelodyTokenizer

from conftest import copy_melodies

PAD, BOS, EOS, A, B, C = range(6)

# Three tiny pieces over a vocabulary of 6 ids; every piece starts with BOS.
TINY = [np.array([BOS, A, B, EOS]), np.array([BOS, A, C, EOS]), np.array([BOS, B, B, EOS])]


@pytest.fixture(scope="module")
def melody_sets(tmp_path_factory):
    """Training and held-out files of 30 bundled melodies, split by file."""
    tokenizer = MelodyTokenizer()
    folder = copy_melodies(tmp_path_factory.mktemp("ngram"), 30)
    corpus = encode_folder(folder, tokenizer, show_progress=False)
    training, held_out = split_by_file(corpus.files, 0.2, 0)
    return tokenizer, training, held_out


def test_tiny_bigram_matches_hand_computation():
    counts = NgramCounts(TINY, vocab_size=6, bos_id=BOS, max_order=2)
    model = KneserNeyModel(counts, 2, excluded_ids=(PAD, BOS))
    # Bigrams: (BOS,A) x2, (A,B), (B,EOS) x2, (A,C), (C,EOS), (BOS,B), (B,B).
    # Bigram count-of-counts: n1 = 5, n2 = 2, so D2 = 5 / (5 + 2 * 2) = 5/9.
    assert model.tables[1].discount == pytest.approx(5 / 9)
    # Continuation counts (distinct left neighbours): A 1, B 3, EOS 2, C 1; 7 bigram types in all.
    # With D1 = 2 / (2 + 2 * 1) = 0.5 and 4 types, D1 * 4 * (1/4) = 0.5, so P1(w) = count / 7.
    unigram = KneserNeyModel(counts, 1, excluded_ids=(PAD, BOS))  # order 1 uses raw counts instead
    assert unigram.distribution([]).sum() == pytest.approx(1.0)
    assert model.tables[0].discount == pytest.approx(0.5)
    # After A: c(A B) = c(A C) = 1, total 2, 2 types.
    # P(B | A) = (1 - 5/9 + 5/9 * 2 * 3/7) / 2 = 29/63; P(EOS | A) = 5/9 * 2 * 2/7 / 2 = 10/63.
    distribution = model.distribution([A])
    assert distribution[B] == pytest.approx(29 / 63)
    assert distribution[C] == pytest.approx((1 - 5 / 9 + 5 / 9 * 2 * 1 / 7) / 2)
    assert distribution[EOS] == pytest.approx(10 / 63)
    assert distribution[PAD] == 0.0
    assert distribution[BOS] == 0.0
    # An unseen context falls back to the continuation unigram: P(B) = 3/7.
    assert model.distribution([EOS])[B] == pytest.approx(3 / 7)


@pytest.mark.parametrize("order", range(1, 9))
def test_kneser_ney_sums_to_one_in_every_context(melody_sets, order):
    tokenizer, training, held_out = melody_sets
    counts = NgramCounts([f.ids for f in training], tokenizer.vocab_size, tokenizer.bos_id, 8)
    model = KneserNeyModel(counts, order, excluded_ids=(tokenizer.pad_id, tokenizer.bos_id))
    # Every context of the training and held-out files, plus random contexts never seen.
    histories = [model.histories(f.ids.astype(np.int64)) for f in training + held_out]
    rng = np.random.default_rng(0)
    histories.append(rng.integers(tokenizer.rest_id, tokenizer.vocab_size, size=(500, order - 1)))
    histories = np.concatenate(histories)
    probs = model.probabilities(histories, np.arange(tokenizer.vocab_size))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs[:, [tokenizer.pad_id, tokenizer.bos_id]] == 0).all()
    assert (probs[:, tokenizer.eos_id :] > 0).all()


def test_target_log_probs_match_distribution(melody_sets):
    tokenizer, training, held_out = melody_sets
    counts = NgramCounts([f.ids for f in training], tokenizer.vocab_size, tokenizer.bos_id, 4)
    model = KneserNeyModel(counts, 4, excluded_ids=(tokenizer.pad_id, tokenizer.bos_id))
    ids = held_out[0].ids.astype(np.int64)
    log_probs = model.target_log_probs(ids)
    for position in (1, 2, 5, len(ids) - 1):
        expected = model.distribution(ids[:position])[ids[position]]
        assert log_probs[position - 1] == pytest.approx(np.log(expected))


def test_higher_order_fits_training_better(melody_sets):
    tokenizer, training, _ = melody_sets
    counts = NgramCounts([f.ids for f in training], tokenizer.vocab_size, tokenizer.bos_id, 8)
    excluded = (tokenizer.pad_id, tokenizer.bos_id)
    nll = [-sum(KneserNeyModel(counts, order, excluded).target_log_probs(f.ids).sum() for f in training)
           for order in (1, 2, 4, 8)]
    assert nll == sorted(nll, reverse=True)


def test_unigram_sums_to_one(melody_sets):
    tokenizer, training, _ = melody_sets
    probs = unigram_probabilities(token_counts(training, tokenizer.vocab_size), tokenizer)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[tokenizer.pad_id] == 0.0
    assert probs[tokenizer.bos_id] == 0.0
    assert (probs[tokenizer.eos_id :] > 0).all()


def test_order_too_high_for_int64_codes():
    with pytest.raises(ValueError, match="do not fit in int64"):
        NgramCounts(TINY, vocab_size=300, bos_id=BOS, max_order=8)


def test_order_outside_counts():
    counts = NgramCounts(TINY, vocab_size=6, bos_id=BOS, max_order=3)
    with pytest.raises(ValueError, match="order must be in 1..3"):
        KneserNeyModel(counts, 4)
