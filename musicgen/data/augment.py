"""Transposition augmentation: training windows move by a random interval each time they are drawn."""

from __future__ import annotations

import logging

import numpy as np
import torch

from musicgen.errors import MusicgenError
from musicgen.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

MAX_INTERVAL = 12  # semitones either way; an octave covers every key
_FIT_CHUNK_WINDOWS = 4096  # windows checked at once, bounding the temporary (intervals x windows x steps) mask


class TranspositionError(MusicgenError, ValueError):
    """An interval range for transposition augmentation that is not usable."""


def parse_interval_range(text: str) -> tuple[int, int]:
    """Parse '-5,6' or '-5..6' into (-5, 6); the range must contain 0 and lie in -12..12."""
    separator = ".." if ".." in text else ","
    parts = [part.strip() for part in text.split(separator)]
    try:
        low, high = (int(part) for part in parts)
    except ValueError:
        raise TranspositionError(
            f"invalid --transpose {text!r}: expected two whole semitone counts LOW,HIGH such as -5,6"
        ) from None
    if not -MAX_INTERVAL <= low <= 0 <= high <= MAX_INTERVAL:
        raise TranspositionError(
            f"invalid --transpose {text!r}: LOW must be in -{MAX_INTERVAL}..0 and HIGH in 0..{MAX_INTERVAL} "
            f"(received {low} and {high}), for example -5,6"
        )
    return low, high


class TranspositionAugmenter:
    """Moves each training window by an interval drawn uniformly from those in low..high that fit it.

    An interval fits a window when every pitched token of the window, moved by it, is still
    in the vocabulary (key tokens change their tonic). Interval 0 always fits, so a window
    at the edge of the pitch range is sometimes left as it is. The draw uses torch's global
    random generator, so a fixed --random-seed repeats it. For a one-to-many model,
    `transpose_keys` makes the key condition of each window move with its notes.
    """

    def __init__(self, tokenizer: Tokenizer, low: int, high: int) -> None:
        self.low, self.high = low, high
        tables = np.stack([tokenizer.transposition_table(interval) for interval in range(low, high + 1)])
        self.tables = torch.from_numpy(tables)  # (intervals, vocabulary)
        self.allowed: torch.Tensor | None = None  # (windows, intervals), set by fit
        self.key_column: int | None = None  # column of the key in a condition row
        self.key_tables: torch.Tensor | None = None  # (intervals, keys): the row of each key moved by each interval

    def transpose_keys(self, key_column: int, keys: list[str]) -> None:
        """Move the key condition (column `key_column`, an index into `keys`) with the notes.

        `keys` must contain every key a transposition can reach, so in practice all 24.
        """
        from musicgen.data.transpose import transposed_key

        rows = {name: index for index, name in enumerate(keys)}
        tables = []
        for interval in range(self.low, self.high + 1):
            moved = [transposed_key(name, interval) for name in keys]
            missing = [name for name in moved if name not in rows]
            if missing:
                raise TranspositionError(f"key {missing[0]} is missing from the model's keys; "
                                         "give the model all 24 keys to transpose its key condition")
            tables.append([rows[name] for name in moved])
        self.key_column, self.key_tables = key_column, torch.tensor(tables)

    def fit(self, windows: torch.Tensor) -> None:
        """Find which intervals fit each of `windows` (shape: windows x steps)."""
        valid = self.tables >= 0
        allowed = torch.empty((len(windows), len(self.tables)), dtype=torch.bool)
        for first in range(0, len(windows), _FIT_CHUNK_WINDOWS):
            chunk = windows[first : first + _FIT_CHUNK_WINDOWS]
            allowed[first : first + len(chunk)] = valid[:, chunk].all(dim=-1).T
        self.allowed = allowed
        mean = float(allowed.sum(dim=1).float().mean()) if len(windows) else 0.0
        logger.info("transposition augmentation by %d..%d semitones: %.1f of %d intervals fit a window on average",
                    self.low, self.high, mean, len(self.tables))

    def __call__(self, batch: torch.Tensor, indices: torch.Tensor,
                 conditions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return `batch`, the windows at `indices`, each moved by a random interval that fits it.

        `conditions` (one row per window, or None) come back with the key column moved by
        the same interval as its window when `transpose_keys` was called.
        """
        if self.allowed is None:
            raise RuntimeError("call fit(windows) before transposing batches")
        choice = torch.multinomial(self.allowed[indices].float(), 1)  # (batch, 1)
        moved = self.tables[choice, batch.long()]
        if conditions is not None and self.key_tables is not None:
            conditions = conditions.clone()
            column = conditions[:, self.key_column]
            conditions[:, self.key_column] = self.key_tables[choice[:, 0], column]
        return moved, conditions

    def to_dict(self) -> dict[str, int]:
        return {"transpose_low": self.low, "transpose_high": self.high}
