"""Scan a MIDI folder, encode every usable file, skip the rest with a reason, split by file."""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicgen.errors import MusicgenError
from musicgen.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi")


class CorpusError(MusicgenError, ValueError):
    """A folder that gives no training material; the message tells the user what to do."""


@dataclass
class EncodedFile:
    path: Path
    ids: np.ndarray  # token ids with BOS and EOS, uint16
    notes: int  # NOTE_ON tokens in `ids`
    # Conditions of a one-to-many model, filled by musicgen.conditions.label_files when needed.
    key: str | None = None  # a name from musicgen.keys.KEY_NAMES, e.g. "D minor"
    style: str | None = None  # the sub-folder of the corpus folder that contains the file


@dataclass
class Corpus:
    """The encoded files of one folder and the files skipped, by reason."""

    folder: Path
    files: list[EncodedFile] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=dict)
    folded_notes: int = 0
    # Reading options that changed the tokens (such as transposition to C), stored in checkpoints.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def token_count(self) -> int:
        return sum(len(encoded.ids) for encoded in self.files)

    def summary(self) -> str:
        counts = ", ".join(f"{len(paths)} {reason}" for reason, paths in sorted(self.skipped.items()))
        skipped = sum(len(paths) for paths in self.skipped.values())
        line = f"read {len(self.files)} files ({self.token_count} tokens), skipped {skipped}"
        return f"{line} ({counts})" if counts else line


def find_midi_files(folder: Path) -> list[Path]:
    """List .mid and .midi files under `folder`, recursively, in any letter case, sorted."""
    if not folder.exists():
        raise CorpusError(f"MIDI folder not found: {folder}; check the path")
    if not folder.is_dir():
        raise CorpusError(f"{folder} is a file, not a folder; give the folder that contains the MIDI files")
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in MIDI_SUFFIXES and path.is_file())


def require_midi_files(folder: Path) -> list[Path]:
    """Return the MIDI files under `folder` as `find_midi_files` does; raise CorpusError when there are none."""
    paths = find_midi_files(folder)
    if not paths:
        raise CorpusError(f"no MIDI files (.mid or .midi) found in {folder}; point to a folder of MIDI files")
    return paths


def encode_folder(folder: Path, tokenizer: Tokenizer, show_progress: bool = True) -> Corpus:
    """Read and encode every MIDI file under `folder` in this process, without the cache.

    A bad file is logged and skipped. `musicgen.data.ingest.ingest_folder` does the same
    in worker processes and through the on-disk cache.
    """
    from musicgen.data.ingest import IngestOptions, ingest_folder

    return ingest_folder(folder, tokenizer, IngestOptions(workers=1, cache_dir=None, show_progress=show_progress))


def reason_kind(reason: str) -> str:
    """Group reasons by their text before the first colon, so counts stay short."""
    return reason.split(":", 1)[0].strip()


def split_by_file(
    files: list[EncodedFile], validation_fraction: float, seed: int
) -> tuple[list[EncodedFile], list[EncodedFile]]:
    """Split files into training and validation sets with a fixed seed.

    Files with identical token streams stay on the same side. With two or more groups,
    validation gets at least one and training keeps at least one; a single group gives
    no validation set.
    """
    groups: dict[bytes, list[EncodedFile]] = {}
    for encoded in files:
        groups.setdefault(hashlib.sha1(encoded.ids.tobytes()).digest(), []).append(encoded)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    if len(keys) < 2 or validation_fraction <= 0:
        count = 0
    else:
        count = min(max(1, round(len(keys) * validation_fraction)), len(keys) - 1)
    validation = [encoded for key in keys[:count] for encoded in groups[key]]
    training = [encoded for key in keys[count:] for encoded in groups[key]]
    return training, validation


def token_counts(files: list[EncodedFile], vocab_size: int) -> np.ndarray:
    """Count each token id over the files (the unigram statistics of a set)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for encoded in files:
        counts += np.bincount(encoded.ids.astype(np.int64), minlength=vocab_size)
    return counts


def duplicate_count(files: list[EncodedFile]) -> int:
    """Return how many files repeat the token stream of an earlier file."""
    seen = Counter(hashlib.sha1(encoded.ids.tobytes()).digest() for encoded in files)
    return sum(count - 1 for count in seen.values())
