"""Interpolated Kneser-Ney n-gram models over token ids: the baseline a melody model must beat.

An n-gram of order k is stored as one int64 code, its tokens read as the digits of a number
in base `vocab_size` (first token most significant). So the code of the context (all tokens
but the last) is `code // vocab_size`, and the code of the suffix (all tokens but the first)
is `code % vocab_size ** (k - 1)`. Every look-up is a `np.searchsorted` in sorted code arrays.

Each sequence is a piece as the tokenizer encodes it: BOS, the grid tokens, EOS. Every token
after the first is a prediction target, and the history before the first token is padded with
BOS, so every n-gram that ends on a target has a full context.

Interpolated Kneser-Ney (Chen and Goodman, "An Empirical Study of Smoothing Techniques for
Language Modeling", 1998, section 3.5 with one discount per order):

    P_k(w | h) = (max(c_k(h w) - D_k, 0) + D_k * N_k(h) * P_{k-1}(w | h')) / c_k(h)

where h' is h without its first token, c_k(h) is the sum of c_k(h w) over w, and N_k(h) is
the number of tokens w with c_k(h w) > 0. At the model's highest order c_k is the raw count.
At lower orders it is the continuation count: the number of distinct tokens seen before h w.
P_0 is uniform over the tokens that can be targets (every id but the excluded PAD and BOS).
A context never seen (c_k(h) = 0) hands its whole mass to P_{k-1}. Since 0 < D_k < 1 and every
nonzero count is at least 1, each P_k sums to 1 over the vocabulary in every context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_CODE = 2**63 - 1
CHUNK_POSITIONS = 16_384  # positions scored at once, to bound memory when scoring many candidates


@dataclass
class CountTable:
    """Counts of the n-grams of one order, sorted by code, with totals per context."""

    codes: np.ndarray  # sorted unique n-gram codes, int64
    counts: np.ndarray  # count of each code, int64
    context_codes: np.ndarray  # sorted unique context codes, int64
    context_totals: np.ndarray  # sum of `counts` over each context's n-grams
    context_types: np.ndarray  # distinct last tokens seen after each context
    discount: float  # D = n1 / (n1 + 2 n2) over `counts`, 0.5 when n1 or n2 is 0

    @classmethod
    def from_codes(cls, codes: np.ndarray, counts: np.ndarray, vocab_size: int) -> CountTable:
        """Build a table from sorted unique codes and their counts."""
        contexts = codes // vocab_size
        context_codes, first_index = np.unique(contexts, return_index=True)
        if len(codes):
            totals = np.add.reduceat(counts, first_index)
        else:
            totals = np.zeros(0, dtype=np.int64)
        types = np.diff(np.append(first_index, len(codes)))
        ones, twos = int((counts == 1).sum()), int((counts == 2).sum())
        discount = ones / (ones + 2 * twos) if ones and twos else 0.5
        return cls(codes, counts, context_codes, totals, types, discount)


def _look_up(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Return the value of each query code in the sorted `keys`, or 0 where it is absent."""
    if len(keys) == 0:
        return np.zeros(queries.shape, dtype=np.int64)
    index = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[index] == queries, values[index], 0)


class NgramCounts:
    """Raw counts and continuation counts of every order 1..max_order over training sequences."""

    def __init__(self, sequences: Sequence[np.ndarray], vocab_size: int, bos_id: int, max_order: int) -> None:
        if max_order < 1:
            raise ValueError(f"max_order must be at least 1 (received {max_order})")
        if vocab_size**max_order > MAX_CODE:
            raise ValueError(f"{max_order}-grams over {vocab_size} tokens do not fit in int64 codes; use a lower order")
        self.vocab_size = vocab_size
        self.bos_id = bos_id
        self.max_order = max_order
        codes_by_order = self._target_codes(sequences)
        self.raw: list[CountTable] = []
        self.continuation: list[CountTable] = []
        for order, codes in enumerate(codes_by_order, start=1):
            unique, counts = np.unique(codes, return_counts=True)
            self.raw.append(CountTable.from_codes(unique, counts.astype(np.int64), vocab_size))
        for order in range(1, max_order):
            # The continuation count of a k-gram is the number of distinct (k+1)-grams it ends.
            suffixes = self.raw[order].codes % vocab_size**order
            unique, counts = np.unique(suffixes, return_counts=True)
            self.continuation.append(CountTable.from_codes(unique, counts.astype(np.int64), vocab_size))

    def padded_history(self, sequence: np.ndarray) -> np.ndarray:
        """Return `sequence` as int64 with max_order - 1 BOS tokens in front."""
        pad = np.full(self.max_order - 1, self.bos_id, dtype=np.int64)
        return np.concatenate((pad, np.asarray(sequence, dtype=np.int64)))

    def _target_codes(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Return, for each order 1..max_order, the codes of the n-grams ending on every target."""
        padded = [self.padded_history(sequence) for sequence in sequences if len(sequence) > 1]
        if not padded:
            return [np.zeros(0, dtype=np.int64) for _ in range(self.max_order)]
        tokens = np.concatenate(padded)
        # A target is every token after the first of its sequence; padding keeps the
        # max_order - 1 tokens before it inside the same sequence.
        is_target = np.concatenate([np.r_[np.zeros(self.max_order, bool), np.ones(len(p) - self.max_order, bool)]
                                    for p in padded])
        codes = tokens.copy()
        by_order = [codes[is_target]]
        for order in range(2, self.max_order + 1):
            shifted = np.zeros_like(tokens)
            shifted[order - 1 :] = tokens[: len(tokens) - order + 1]
            codes = codes + shifted * self.vocab_size ** (order - 1)
            by_order.append(codes[is_target])
        return by_order


class KneserNeyModel:
    """An interpolated Kneser-Ney model of one order, over the counts of an `NgramCounts`."""

    def __init__(self, counts: NgramCounts, order: int, excluded_ids: Sequence[int] = ()) -> None:
        if not 1 <= order <= counts.max_order:
            raise ValueError(f"order must be in 1..{counts.max_order} (received {order})")
        self.counts = counts
        self.order = order
        self.vocab_size = counts.vocab_size
        self.base = np.ones(self.vocab_size, dtype=np.float64)
        self.base[list(excluded_ids)] = 0.0
        self.base /= self.base.sum()
        # Tables by order 1..order: continuation counts below the highest order, raw counts at it.
        self.tables = [*counts.continuation[: order - 1], counts.raw[order - 1]]

    def probabilities(self, histories: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Return P(candidate | history) with shape (positions, candidates per position).

        `histories` has shape (positions, order - 1), the tokens before each position;
        `candidates` has shape (candidates,) or (positions, candidates).
        """
        histories = np.asarray(histories, dtype=np.int64).reshape(len(histories), self.order - 1)
        candidates = np.asarray(candidates, dtype=np.int64)
        if candidates.ndim == 1:
            candidates = np.broadcast_to(candidates, (len(histories), len(candidates)))
        probs = self.base[candidates].copy()
        context = np.zeros((len(histories), 1), dtype=np.int64)
        for level, table in enumerate(self.tables, start=1):
            if level > 1:
                # Extend the context by one token on the left: the one `level - 1` before the target.
                context = context + histories[:, [self.order - level]] * self.vocab_size ** (level - 2)
            probs = self._interpolate(table, context, candidates, probs)
        return probs

    def _interpolate(self, table: CountTable, context: np.ndarray, candidates: np.ndarray,
                     lower: np.ndarray) -> np.ndarray:
        counts = _look_up(table.codes, table.counts, context * self.vocab_size + candidates)
        totals = _look_up(table.context_codes, table.context_totals, context)
        types = _look_up(table.context_codes, table.context_types, context)
        discount = table.discount
        mixed = (np.maximum(counts - discount, 0.0) + discount * types * lower) / np.maximum(totals, 1)
        return np.where(totals > 0, mixed, lower)

    def distribution(self, history: Sequence[int]) -> np.ndarray:
        """Return P(w | history) for every token id w; `history` is BOS-padded on the left if short."""
        history = list(history)[-(self.order - 1) :] if self.order > 1 else []
        history = [self.counts.bos_id] * (self.order - 1 - len(history)) + history
        all_ids = np.arange(self.vocab_size)
        return self.probabilities(np.array([history], dtype=np.int64), all_ids)[0]

    def histories(self, sequence: np.ndarray) -> np.ndarray:
        """Return the (order - 1)-token history of each target of `sequence` (every token after the first)."""
        padded = self.counts.padded_history(sequence)[self.counts.max_order - self.order :]
        targets = len(sequence) - 1
        return np.stack([padded[offset : offset + targets] for offset in range(1, self.order)], axis=1) \
            if self.order > 1 else np.zeros((targets, 0), dtype=np.int64)

    def target_log_probs(self, sequence: np.ndarray) -> np.ndarray:
        """Return the natural log of P(token | history) for every token after the first."""
        sequence = np.asarray(sequence, dtype=np.int64)
        histories = self.histories(sequence)
        targets = sequence[1:]
        result = np.empty(len(targets), dtype=np.float64)
        for start in range(0, len(targets), CHUNK_POSITIONS):
            rows = slice(start, start + CHUNK_POSITIONS)
            probs = self.probabilities(histories[rows], targets[rows, None])[:, 0]
            result[rows] = np.log(probs)
        return result
