"""Conditions of the one-to-many model: label training files, check requested values, batch them.

A file's style is the sub-folder of the training folder that contains it (a file directly
in the training folder gets the folder's own name). Its key comes from
`musicgen.keys.estimate_key` on the file's notes, and its first note is the pitch of its
first NOTE_ON token.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import torch
from tqdm import tqdm

from musicgen.config import ModelConfig
from musicgen.data.corpus import Corpus, EncodedFile
from musicgen.data.dataset import cut_windows
from musicgen.errors import MusicgenError
from musicgen.keys import KEY_NAMES, estimate_key, parse_key
from musicgen.metrics import Evaluation, evaluate_model
from musicgen.midi_io import MidiReadError, read_score
from musicgen.models import CONDITION_KINDS, FixedCondition, MelodyRNN, OneToManyConfig, OneToManyRNN
from musicgen.notes import name_to_pitch, pitch_to_name
from musicgen.tokenizer import Tokenizer

logger = logging.getLogger(__name__)


class ConditionError(MusicgenError, ValueError):
    """A condition kind or value the model does not know; the message lists the known ones."""


def parse_condition_kinds(text: str) -> list[str]:
    """Parse --condition text such as 'key,style' into a list of distinct kinds."""
    kinds = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in kinds if kind not in CONDITION_KINDS]
    if not kinds or unknown:
        raise ConditionError(
            f"invalid --condition {text!r}: give one or more of {', '.join(CONDITION_KINDS)}, separated by commas"
        )
    return list(dict.fromkeys(kinds))


def style_of(path: Path, folder: Path) -> str:
    """Return the name of the sub-folder of `folder` that contains `path`, or the folder's own name."""
    parts = path.relative_to(folder).parts
    return parts[0] if len(parts) > 1 else folder.resolve().name


def first_note_of(encoded: EncodedFile, tokenizer: Tokenizer) -> int:
    """Return the MIDI pitch of the file's first NOTE_ON token (every encoded file has one)."""
    first = next(int(token) for token in encoded.ids if tokenizer.is_note_on(int(token)))
    return tokenizer.pitch_of(first)


def label_files(corpus: Corpus, tokenizer: Tokenizer, kinds: list[str], show_progress: bool = True) -> None:
    """Fill `style` and, when `kinds` has "key", `key` of every file in the corpus."""
    for encoded in corpus.files:
        encoded.style = style_of(encoded.path, corpus.folder)
    if "key" not in kinds:
        return
    for encoded in tqdm(corpus.files, desc="estimating keys", unit="file", disable=not show_progress, leave=False):
        encoded.key = _file_key(encoded, tokenizer)
    logger.info("keys of the training files: %s", _counts_text(encoded.key for encoded in corpus.files))


def _file_key(encoded: EncodedFile, tokenizer: Tokenizer) -> str:
    """Estimate a file's key from the whole score (which has the key signature), else from its melody."""
    try:
        return estimate_key(read_score(encoded.path))
    except (MidiReadError, OSError, ValueError) as error:
        logger.debug("key of %s from its encoded melody (%s)", encoded.path, error)
        return estimate_key(tokenizer.decode_notes(encoded.ids.tolist()))


def conditioned_config(
    base: ModelConfig, kinds: list[str], files: list[EncodedFile], tokenizer: Tokenizer, each_step: bool = True,
    all_keys: bool = False,
) -> OneToManyConfig:
    """Return a one-to-many config with the shape of `base` and the condition values found in `files`.

    With `all_keys` (transposition augmentation moves keys) the model knows all 24 keys.
    NOTE: values are collected from every file, so a value seen only in validation files
    gets an embedding that training never updates, unless augmentation reaches it.
    """
    keys = set(KEY_NAMES) if all_keys else {encoded.key for encoded in files if encoded.key is not None}
    styles = sorted({encoded.style for encoded in files if encoded.style is not None})
    first_notes = sorted({first_note_of(encoded, tokenizer) for encoded in files})
    if "style" in kinds and len(styles) == 1:
        logger.warning("all files are in one style (%s), so the style condition carries no information; "
                       "put each style's files in its own sub-folder", styles[0])
    logger.info("conditions: %s; %d keys, %d styles (%s), %d first notes",
                ",".join(kinds), len(keys), len(styles), ", ".join(styles), len(first_notes))
    return OneToManyConfig(**base.to_dict(), conditions=kinds, keys=[name for name in KEY_NAMES if name in keys],
                           styles=styles, first_notes=first_notes, condition_each_step=each_step)


def condition_row(config: OneToManyConfig, key: str | None, style: str | None, first_note: int | None) -> list[int]:
    """Return the embedding row of each condition kind of the model; raise ConditionError for an unknown value."""
    given = {"key": key, "style": style, "first-note": first_note}
    return [_value_index(config, kind, given[kind]) for kind in config.conditions]


def _value_index(config: OneToManyConfig, kind: str, value: str | int | None) -> int:
    known = config.known_values(kind)
    if value is None:
        raise ConditionError(f"this model is conditioned on {kind}; give --{kind} ({_known_text(kind, known)})")
    if kind == "style":
        matches = [index for index, name in enumerate(known) if name.lower() == str(value).lower()]
        if matches:
            return matches[0]
    elif value in known:
        return known.index(value)
    shown = pitch_to_name(value) if kind == "first-note" and isinstance(value, int) else value
    raise ConditionError(f"--{kind} {shown!r} is unknown to this model; it knows {_known_text(kind, known)}")


def _known_text(kind: str, known: list) -> str:
    if kind == "first-note":
        return "first notes " + ", ".join(pitch_to_name(pitch) for pitch in known)
    return f"{kind}s " + ", ".join(known)


def parse_first_note(text: str) -> int:
    """Parse --first-note as a note name (D4) or a MIDI number (62)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        return name_to_pitch(text)
    except ValueError as error:
        raise ConditionError(f"invalid --first-note {text!r}: {error}") from None


def parse_key_option(text: str) -> str:
    """Parse --key text into a name of KEY_NAMES, raising ConditionError with the accepted names."""
    try:
        return parse_key(text)
    except ValueError as error:
        raise ConditionError(str(error).replace("invalid key", "invalid --key", 1)) from None


def file_condition_row(config: OneToManyConfig, encoded: EncodedFile, tokenizer: Tokenizer) -> list[int]:
    return condition_row(config, encoded.key, encoded.style, first_note_of(encoded, tokenizer))


def cut_training_windows(
    files: list[EncodedFile], seq_len: int, pad_id: int, config: ModelConfig, tokenizer: Tokenizer,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Cut training windows; for a one-to-many model also return each window's condition row (windows, kinds).

    Every window of a file, not only its first, starts from the state of the file's
    condition, so the condition shapes the whole melody and not just its opening.
    """
    if not isinstance(config, OneToManyConfig):
        return cut_windows(files, seq_len, pad_id), None
    windows, rows = [], []
    for encoded in files:
        file_windows = cut_windows([encoded], seq_len, pad_id)
        windows.append(file_windows)
        rows.append(torch.tensor([file_condition_row(config, encoded, tokenizer)]).expand(len(file_windows), -1))
    return torch.cat(windows), torch.cat(rows)


def evaluate(model: MelodyRNN, files: list[EncodedFile], tokenizer: Tokenizer, device: torch.device) -> Evaluation:
    """Evaluate whole files; a one-to-many model starts each file from that file's condition."""
    if not isinstance(model, OneToManyRNN):
        return evaluate_model(model, files, tokenizer, device)
    groups: dict[tuple[int, ...], list[EncodedFile]] = {}
    for encoded in files:
        groups.setdefault(tuple(file_condition_row(model.config, encoded, tokenizer)), []).append(encoded)
    total = Evaluation()
    for row, group in groups.items():
        part = evaluate_model(FixedCondition(model, list(row)), group, tokenizer, device)  # type: ignore[arg-type]
        total.nll += part.nll
        total.tokens += part.tokens
        total.notes += part.notes
        total.note_hits += part.note_hits
    return total


def _counts_text(values) -> str:
    return ", ".join(f"{value} {count}" for value, count in Counter(values).most_common())
