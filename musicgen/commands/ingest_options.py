"""Command-line options shared by train, tokenize and inspect: the tokenizer and how a folder is read."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import click

MAX_WORKERS = 256
EVENT_ONLY = ("max_shift_steps", "velocity_bins", "program_tokens")


@dataclass(frozen=True)
class TokenizerSetup:
    """The tokenizer options as given; None means the chosen tokenizer's default."""

    tokenizer: str = "melody"
    steps_per_quarter: int | None = None
    pitch_low: int | None = None
    pitch_high: int | None = None
    max_shift_steps: int | None = None
    velocity_bins: int | None = None
    program_tokens: bool = False
    key_tokens: bool = False

    def build(self) -> Any:
        """Return the tokenizer these options describe; raises a one-line error for a bad combination."""
        from musicgen.tokenizer import EventTokenizer, MelodyTokenizer

        settings = {field.name: getattr(self, field.name) for field in fields(self) if field.name != "tokenizer"}
        if self.tokenizer == "melody":
            given = [name for name in EVENT_ONLY if settings.pop(name) not in (None, False)]
            if given:
                option = "--" + given[0].replace("_", "-")
                raise click.UsageError(f"{option} applies to --tokenizer event only; add --tokenizer event or drop {option}")
            return MelodyTokenizer(**{name: value for name, value in settings.items() if value is not None})
        return EventTokenizer(**{name: value for name, value in settings.items() if value is not None})


@dataclass(frozen=True)
class IngestSetup:
    """The options of how a folder is read, as given."""

    workers: int | None = None
    cache_dir: Path | None = None
    no_cache: bool = False
    transpose_to_c: bool = False

    def build(self, show_progress: bool, estimate_keys: bool = False) -> Any:
        from musicgen.data.cache import default_cache_dir
        from musicgen.data.ingest import IngestOptions, default_workers

        if self.no_cache and self.cache_dir is not None:
            raise click.UsageError("--cache-dir and --no-cache exclude each other; drop one of them")
        cache_dir = None if self.no_cache else (self.cache_dir or default_cache_dir())
        return IngestOptions(workers=self.workers or default_workers(), cache_dir=cache_dir,
                             transpose_to_c=self.transpose_to_c, estimate_keys=estimate_keys, show_progress=show_progress)


_TOKENIZER_OPTIONS = [
    click.option("--tokenizer", type=click.Choice(["melody", "event"]), default="melody", show_default=True,
                 help="melody: one token per grid step of the highest note; event: polyphonic NOTE_ON, NOTE_OFF, "
                      "TIME_SHIFT and VELOCITY tokens."),
    click.option("--steps-per-quarter", type=click.IntRange(1, 96), default=None,
                 help="Time steps per quarter note (4 is a 16th-note grid).  [default: 4 for melody, 12 for event]"),
    click.option("--pitch-low", type=click.IntRange(0, 116), default=None,
                 help="Lowest MIDI pitch in the vocabulary; lower notes move up by octaves.  [default: 36 for melody, 21 for event]"),
    click.option("--pitch-high", type=click.IntRange(11, 127), default=None,
                 help="Highest MIDI pitch in the vocabulary; higher notes move down by octaves.  "
                      "[default: 96 for melody, 108 for event]"),
    click.option("--max-shift-steps", type=click.IntRange(1, 1024), default=None,
                 help="Event tokenizer: longest TIME_SHIFT token, in steps; longer gaps take several.  [default: 48]"),
    click.option("--velocity-bins", type=click.IntRange(0, 127), default=None,
                 help="Event tokenizer: VELOCITY tokens splitting 1..127 into equal bins; 0 leaves velocity out.  [default: 32]"),
    click.option("--program-tokens", is_flag=True,
                 help="Event tokenizer: add PROGRAM tokens, so notes keep their General MIDI instrument."),
    click.option("--key-tokens", is_flag=True,
                 help="Add 24 KEY tokens; every piece starts with the token of its estimated key."),
]

_INGEST_OPTIONS = [
    click.option("--workers", type=click.IntRange(1, MAX_WORKERS), default=None,
                 help="Processes that read and tokenize MIDI files.  [default: the CPU count, at most 8]"),
    click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Folder of the token cache, so a second run over the same files reads none of them.  "
                      "[default: $MUSICGEN_CACHE_DIR, else the user cache folder, e.g. ~/.cache/musicgen]"),
    click.option("--no-cache", is_flag=True, help="Read every file and keep no cache."),
    click.option("--transpose-to-c", is_flag=True,
                 help="Transpose every piece to C major or A minor (key from its key signature when the notes fit "
                      "it, else music21's Krumhansl-Schmuckler estimate)."),
]


def _grouped(options: list[Callable], setup_class: type, argument: str) -> Callable:
    """Return a decorator that adds `options` and passes their values as one `setup_class` in `argument`."""
    names = [field.name for field in fields(setup_class)]

    def decorator(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names if name in kwargs}
            return function(*args, **{argument: setup_class(**values)}, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorator


tokenizer_options = _grouped(_TOKENIZER_OPTIONS, TokenizerSetup, "tokenizer_setup")
ingest_options = _grouped(_INGEST_OPTIONS, IngestSetup, "ingest_setup")
