"""The evaluate workflow: score a checkpoint on held-out files beside n-gram baselines.

The baselines are fitted on the model's own training files: the files of the checkpoint's
training folder that are not among its stored validation files. The held-out files are those
validation files when the folder evaluated is the training folder, else every file of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from musicgen.checkpoint import load_model
from musicgen.data.corpus import Corpus, EncodedFile, encode_folder, token_counts
from musicgen.device import resolve_device
from musicgen.errors import MusicgenError
from musicgen.metrics import Evaluation, unigram_evaluation
from musicgen.ngram import CHUNK_POSITIONS, MAX_CODE, KneserNeyModel, NgramCounts
from musicgen.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

NGRAM_ORDERS = tuple(range(2, 9))
VALIDATION_SOURCE = "validation"  # the held-out files are the checkpoint's validation files
FOLDER_SOURCE = "folder"  # the held-out files are every file of another folder


class EvaluationError(MusicgenError):
    pass


@dataclass
class EvaluationReport:
    """Scores of a model and its baselines on one set of held-out files."""

    model_path: Path
    midi_dir: Path
    held_out_source: str  # VALIDATION_SOURCE or FOLDER_SOURCE
    held_out: list[EncodedFile]
    training_folder: Path
    training: list[EncodedFile]
    model: Evaluation
    unigram: Evaluation
    ngrams: dict[int, Evaluation] = field(default_factory=dict)  # by order
    duplicates_of_training: int = 0  # held-out files whose tokens equal a training file's
    conditioned_on: list[str] = field(default_factory=list)  # conditions of a one-to-many model

    @property
    def best_ngram_order(self) -> int:
        """Order of the n-gram model with the lowest bits per note on the held-out files."""
        return min(self.ngrams, key=lambda order: self.ngrams[order].bits_per_note)

    @property
    def ratio_to_best_ngram(self) -> float:
        """The model's bits per note divided by the best n-gram's: below 1 means the model is better."""
        return self.model.bits_per_note / self.ngrams[self.best_ngram_order].bits_per_note

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: where the files came from, their size, and every model's metrics."""
        rows = {"model": self.model, "unigram": self.unigram}
        rows.update({f"kneser-ney-{order}": result for order, result in self.ngrams.items()})
        report = {
            "model": str(self.model_path),
            "midi_dir": str(self.midi_dir),
            "held_out": {"source": self.held_out_source, "files": len(self.held_out),
                         "tokens": sum(len(f.ids) - 1 for f in self.held_out),
                         "notes": sum(f.notes for f in self.held_out),
                         "duplicates_of_training": self.duplicates_of_training},
            "training": {"folder": str(self.training_folder), "files": len(self.training),
                         "tokens": sum(len(f.ids) - 1 for f in self.training)},
            "metrics": {name: metrics_dict(result) for name, result in rows.items()},
        }
        if self.ngrams:
            report["best_ngram_order"] = self.best_ngram_order
            report["ratio_to_best_ngram"] = self.ratio_to_best_ngram
        if self.conditioned_on:
            report["conditioned_on"] = self.conditioned_on
        return report


def metrics_dict(result: Evaluation) -> dict[str, float]:
    return {"nll_per_token": result.loss, "perplexity": result.perplexity, "bits_per_note": result.bits_per_note,
            "note_accuracy": result.note_accuracy}


def evaluate_checkpoint(
    model_path: Path, midi_dir: Path, train_dir: Path | None = None, device_name: str = "auto",
    orders: tuple[int, ...] = NGRAM_ORDERS, show_progress: bool = True,
) -> EvaluationReport:
    """Score the checkpoint and its baselines on the held-out files of `midi_dir`."""
    device = resolve_device(device_name)
    model, tokenizer, payload = load_model(model_path, device)
    data = payload.get("data") or {}
    training_folder = resolve_training_folder(model_path, data, train_dir)
    validation_names = set(data.get("validation_names") or [])
    training_corpus = encode_folder(training_folder, tokenizer, show_progress)
    training, validation = [], []
    for encoded in training_corpus.files:
        is_validation = _relative_name(encoded, training_folder) in validation_names
        (validation if is_validation else training).append(encoded)
    _check_training_count(training, data, training_folder)

    if _same_folder(midi_dir, training_folder):
        source = VALIDATION_SOURCE
        held_out_corpus = Corpus(training_corpus.folder, validation)
        _check_validation_files(held_out_corpus.files, validation_names, training_folder)
    else:
        source = FOLDER_SOURCE
        held_out_corpus = encode_folder(midi_dir, tokenizer, show_progress)
    held_out = held_out_corpus.files
    report = EvaluationReport(
        model_path, midi_dir, source, held_out, training_folder, training,
        model=_score_model(model, held_out_corpus, tokenizer, device, show_progress),
        unigram=unigram_evaluation(token_counts(training, tokenizer.vocab_size), held_out, tokenizer),
        duplicates_of_training=_duplicates(held_out, training),
        conditioned_on=list(getattr(model.config, "conditions", None) or []),
    )
    report.ngrams = ngram_evaluations(training, held_out, tokenizer, orders, show_progress)
    return report


def resolve_training_folder(model_path: Path, data: dict[str, Any], train_dir: Path | None) -> Path:
    """Find the checkpoint's training folder: `train_dir`, else the stored path.

    A relative stored path is tried from the working directory, then from the checkpoint's
    folder and its parent (a checkpoint in models/ trained from the repository root).
    """
    if train_dir is not None:
        if not train_dir.is_dir():
            raise EvaluationError(f"--train-dir {train_dir} is not a folder; give the folder the model was trained on")
        return train_dir
    stored = data.get("folder")
    if not stored:
        raise EvaluationError(f"{model_path} does not store its training folder; give it with --train-dir")
    candidates = [Path(stored)]
    if not Path(stored).is_absolute():
        candidates += [model_path.parent / stored, model_path.parent.parent / stored]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise EvaluationError(
        f"training folder {stored} of {model_path} not found; give the folder the model was trained on with --train-dir"
    )


def _relative_name(encoded: EncodedFile, folder: Path) -> str:
    return str(encoded.path.relative_to(folder))


def _same_folder(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _check_training_count(training: list[EncodedFile], data: dict[str, Any], folder: Path) -> None:
    expected = data.get("train_files")
    if expected is not None and expected != len(training):
        logger.warning("%s now gives %d training files, but the model was trained on %d; the baselines are fitted "
                       "on the files found now", folder, len(training), expected)


def _check_validation_files(held_out: list[EncodedFile], names: set[str], folder: Path) -> None:
    if not names:
        raise EvaluationError(
            f"the checkpoint stores no validation files for {folder}, so nothing there is held out; "
            "give a folder of files the model was not trained on"
        )
    if len(held_out) < len(names):
        logger.warning("%d of the %d validation files of the checkpoint were not found or not readable in %s",
                       len(names) - len(held_out), len(names), folder)
    if not held_out:
        raise EvaluationError(f"none of the checkpoint's {len(names)} validation files were found in {folder}")


def _duplicates(held_out: list[EncodedFile], training: list[EncodedFile]) -> int:
    """Count held-out files whose token stream equals a training file's: they flatter every model."""
    seen = {hashlib.sha1(f.ids.tobytes()).digest() for f in training}
    count = sum(1 for f in held_out if hashlib.sha1(f.ids.tobytes()).digest() in seen)
    if count:
        logger.warning("%d of %d held-out files repeat a training file's melody", count, len(held_out))
    return count


def _score_model(model: Any, corpus: Corpus, tokenizer: Tokenizer, device: Any, show_progress: bool) -> Evaluation:
    """Score the model; a one-to-many model starts each file from that file's own conditions."""
    from musicgen.conditions import evaluate, label_files

    from musicgen.sampling import one_thread_on_cpu

    kinds = list(getattr(model.config, "conditions", None) or [])
    if kinds:
        label_files(corpus, tokenizer, kinds, show_progress)
    # Each file runs as one sequence of batch 1: many tiny recurrent steps, fastest on one thread as in sampling.
    with one_thread_on_cpu(device):
        return evaluate(model, corpus.files, tokenizer, device)


def ngram_evaluations(
    training: list[EncodedFile], held_out: list[EncodedFile], tokenizer: Tokenizer,
    orders: tuple[int, ...] = NGRAM_ORDERS, show_progress: bool = True,
) -> dict[int, Evaluation]:
    """Fit interpolated Kneser-Ney models of each order on `training` and score `held_out`."""
    fitting = tuple(order for order in orders if tokenizer.vocab_size**order <= MAX_CODE)
    if len(fitting) < len(orders):
        logger.info("Kneser-Ney orders above %d are left out: their n-grams over %d tokens do not fit in int64 codes",
                    max(fitting, default=0), tokenizer.vocab_size)
    orders = fitting
    if not orders:
        return {}
    counts = NgramCounts([f.ids for f in training], tokenizer.vocab_size, tokenizer.bos_id, max(orders))
    excluded = (tokenizer.pad_id, tokenizer.bos_id)
    results = {}
    for order in tqdm(orders, desc="n-gram baselines", unit="order", disable=not show_progress, leave=False):
        results[order] = ngram_evaluation(KneserNeyModel(counts, order, excluded), held_out, tokenizer)
    return results


def ngram_evaluation(model: KneserNeyModel, files: list[EncodedFile], tokenizer: Tokenizer) -> Evaluation:
    """Score whole files with an n-gram model, with the note accuracy of `metrics.Evaluation`."""
    result = Evaluation()
    note_ids = tokenizer.note_on_ids.astype(np.int64)
    for encoded in files:
        ids = encoded.ids.astype(np.int64)
        result.nll -= float(model.target_log_probs(ids).sum())
        result.tokens += len(ids) - 1
        onsets = np.flatnonzero(tokenizer.note_on_mask(ids[1:]))
        result.notes += len(onsets)
        histories = model.histories(ids)[onsets]
        for start in range(0, len(onsets), CHUNK_POSITIONS):
            rows = slice(start, start + CHUNK_POSITIONS)
            best = note_ids[model.probabilities(histories[rows], note_ids).argmax(axis=1)]
            result.note_hits += int((best == ids[1:][onsets[rows]]).sum())
    return result
