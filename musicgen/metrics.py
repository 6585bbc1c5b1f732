"""Validation metrics of a model and of the unigram baseline, over whole files."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from musicgen.data.corpus import EncodedFile
from musicgen.models import MelodyRNN
from musicgen.tokenizer import Tokenizer

LN2 = math.log(2.0)


@dataclass
class Evaluation:
    """Summed over a set of files: NLL in nats over every predicted token, and note-onset hits."""

    nll: float = 0.0
    tokens: int = 0
    notes: int = 0
    note_hits: int = 0

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood per token, in nats."""
        return self.nll / max(self.tokens, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))

    @property
    def bits_per_note(self) -> float:
        """NLL of whole files in bits, divided by their NOTE_ON count: comparable across encodings."""
        return self.nll / LN2 / max(self.notes, 1)

    @property
    def note_accuracy(self) -> float:
        """Share of NOTE_ON targets whose pitch ranks first among the NOTE_ON tokens.

        Only onset steps count, because HOLD steps dominate the grid and would inflate
        plain accuracy; ranking among NOTE_ON tokens measures whether the model picks the next pitch.
        """
        return self.note_hits / max(self.notes, 1)


@torch.no_grad()
def evaluate_model(
    model: MelodyRNN, files: list[EncodedFile], tokenizer: Tokenizer, device: torch.device,
    batch_files: int = 32, chunk_steps: int = 1024,
) -> Evaluation:
    """Run the model over each whole file, carrying the state across chunks of `chunk_steps`."""
    was_training = model.training
    model.eval()
    result = Evaluation()
    ordered = sorted(files, key=lambda encoded: len(encoded.ids))
    for first in range(0, len(ordered), batch_files):
        batch = _pad_batch(ordered[first : first + batch_files], tokenizer.pad_id).to(device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        state = None
        for start in range(0, inputs.shape[1], chunk_steps):
            logits, state = model(inputs[:, start : start + chunk_steps], state)
            _accumulate(result, logits, targets[:, start : start + chunk_steps], tokenizer)
    model.train(was_training)
    return result


def _pad_batch(files: list[EncodedFile], pad_id: int) -> torch.Tensor:
    length = max(len(encoded.ids) for encoded in files)
    batch = np.full((len(files), length), pad_id, dtype=np.int64)
    for row, encoded in enumerate(files):
        batch[row, : len(encoded.ids)] = encoded.ids
    return torch.from_numpy(batch)


def _accumulate(result: Evaluation, logits: torch.Tensor, targets: torch.Tensor, tokenizer: Tokenizer) -> None:
    mask = targets != tokenizer.pad_id
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    result.nll += float(nll[mask].sum())
    result.tokens += int(mask.sum())
    is_note = torch.from_numpy(tokenizer.note_on_table).to(targets.device)[targets]
    result.notes += int(is_note.sum())
    note_ids = torch.from_numpy(tokenizer.note_on_ids).to(targets.device)
    predicted = note_ids[logits[..., note_ids].argmax(dim=-1)]
    result.note_hits += int((predicted[is_note] == targets[is_note]).sum())


def unigram_probabilities(train_counts: np.ndarray, tokenizer: Tokenizer) -> np.ndarray:
    """Return token frequencies of the training set, add-one smoothed, with PAD and BOS at 0; they sum to 1."""
    counts = train_counts.astype(np.float64) + 1.0
    counts[[tokenizer.pad_id, tokenizer.bos_id]] = 0.0
    return counts / counts.sum()


def unigram_evaluation(train_counts: np.ndarray, files: list[EncodedFile], tokenizer: Tokenizer) -> Evaluation:
    """Score files with token frequencies of the training set (add-one smoothed, no PAD or BOS)."""
    counts = unigram_probabilities(train_counts, tokenizer)
    log_probs = np.log(counts, where=counts > 0, out=np.full_like(counts, -np.inf))
    result = Evaluation()
    most_frequent_note = int(tokenizer.note_on_ids[np.argmax(counts[tokenizer.note_on_ids])])
    for encoded in files:
        targets = encoded.ids[1:].astype(np.int64)
        result.nll -= float(log_probs[targets].sum())
        result.tokens += len(targets)
        notes = tokenizer.note_on_mask(targets)
        result.notes += int(notes.sum())
        result.note_hits += int((targets[notes] == most_frequent_note).sum())
    return result
