"""Scan a MIDI folder, encode every usable file, skip the rest with a reason, split by file."""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from musicgen.errors import MusicgenError
from musicgen.midi_io import MidiReadError, read_score
from musicgen.tokenizer import NoMelodyError
from musicgen.tokenizer.melody import MelodyTokenizer

logger = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi")


class CorpusError(MusicgenError, ValueError):
    """A folder that gives no training material; the message tells the user what to do."""


@dataclass
class EncodedFile:
    path: Path
    ids: np.ndarray  # token ids with BOS and EOS, uint16
    notes: int  # NOTE_ON tokens in `ids`


@dataclass
class Corpus:
    """The encoded files of one folder and the files skipped, by reason."""

    folder: Path
    files: list[EncodedFile] = field(default_factory=list)
    skipped: dict[str, list[Path]] = field(default_factory=dict)
    folded_notes: int = 0

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


def encode_folder(folder: Path, tokenizer: MelodyTokenizer, show_progress: bool = True) -> Corpus:
    """Read and encode every MIDI file under `folder`; a bad file is logged and skipped."""
    paths = find_midi_files(folder)
    if not paths:
        raise CorpusError(f"no MIDI files (.mid or .midi) found in {folder}; point to a folder of MIDI files")
    corpus = Corpus(folder)
    for path in tqdm(paths, desc="reading MIDI", unit="file", disable=not show_progress, leave=False):
        try:
            ids, stats = tokenizer.encode_with_stats(read_score(path))
        except (MidiReadError, NoMelodyError) as error:
            reason = str(error)
            logger.warning("skipped %s: %s", path, reason)
            corpus.skipped.setdefault(_reason_kind(reason), []).append(path)
            continue
        corpus.folded_notes += stats.folded_notes
        corpus.files.append(EncodedFile(path, np.asarray(ids, dtype=np.uint16), stats.notes))
    logger.info("%s: %s", folder, corpus.summary())
    if corpus.folded_notes:
        logger.info("moved %d notes by octaves into the pitch range", corpus.folded_notes)
    if not corpus.files:
        raise CorpusError(
            f"none of the {len(paths)} MIDI files in {folder} could be used ({corpus.summary()}); "
            "see the warnings above for each file"
        )
    return corpus


def _reason_kind(reason: str) -> str:
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
