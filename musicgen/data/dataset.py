"""Training windows cut from token streams, as one tensor of shape (windows, seq_len + 1)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from musicgen.data.corpus import EncodedFile

logger = logging.getLogger(__name__)


def cut_windows(files: list[EncodedFile], seq_len: int, pad_id: int) -> torch.Tensor:
    """Cut each file's ids into windows of seq_len + 1 tokens, stepping seq_len tokens.

    A window's first seq_len tokens are the input and its last seq_len the targets, so
    consecutive windows share one token and every token is a target once. The tail of a
    file, and a whole file shorter than a window, is padded with PAD, which the loss ignores.
    """
    windows: list[np.ndarray] = []
    for encoded in files:
        ids = encoded.ids.astype(np.int64)
        for start in range(0, max(len(ids) - 1, 1), seq_len):
            window = ids[start : start + seq_len + 1]
            if len(window) < seq_len + 1:
                window = np.concatenate((window, np.full(seq_len + 1 - len(window), pad_id, dtype=np.int64)))
            windows.append(window)
    return torch.from_numpy(np.stack(windows))


def log_short_files(files: list[EncodedFile], seq_len: int) -> None:
    """Log how many files are shorter than one window and so become padded windows."""
    short = sum(1 for encoded in files if len(encoded.ids) < seq_len + 1)
    if short:
        noun, verb = ("file", "was") if short == 1 else ("files", "were")
        logger.info("%d %s shorter than --seq-len %d %s padded", short, noun, seq_len, verb)
