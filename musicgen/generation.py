"""The generate workflow: load a model, parse the seed and conditions, sample, check and write .mid files."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicgen import __version__
from musicgen.checkpoint import load_model
from musicgen.conditions import condition_row, parse_first_note, parse_key_option
from musicgen.constants import DEFAULT_PROGRAM, DEFAULT_TEMPO_BPM, DEFAULT_TIME_SIGNATURE, DEFAULT_VELOCITY
from musicgen.device import resolve_device
from musicgen.errors import MusicgenError
from musicgen.export import program_name, program_number, write_midi
from musicgen.keys import estimate_key, scale_pitch_classes
from musicgen.models import MANY_TO_MANY, ONE_TO_MANY, MelodyRNN, OneToManyRNN
from musicgen.notes import pitch_to_name
from musicgen.sampling import beam_search, check_sampling_options, sample_continuations
from musicgen.seed import Seed, parse_seed
from musicgen.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

MAX_LENGTH = 1_000_000  # steps; about 35 hours at 120 BPM on a 16th grid
REPEAT_WARNING_ONSETS = 16  # a pitch struck more often than this in a row triggers a warning
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "bach_melody_lstm.pt"


class GenerationError(MusicgenError):
    pass


@dataclass
class GenerateOptions:
    model: Path = DEFAULT_MODEL
    seed: str | None = None
    length: int | None = None  # steps generated after the seed
    bars: int | None = None  # bars generated after the seed, instead of length
    seed_bars: int | None = None
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    beam_size: int | None = None  # None samples; a width runs beam search
    num: int = 1
    output_dir: Path = Path("generated")
    random_seed: int | None = None
    tempo: float | None = None
    program: int | str = DEFAULT_PROGRAM  # General MIDI number 0..127 or instrument name
    velocity: int = DEFAULT_VELOCITY
    device: str = "auto"
    stop_at_eos: bool = False
    key: str | None = None  # condition of a one-to-many model, and the scale of in_key
    style: str | None = None
    first_note: str | None = None  # note name or MIDI number
    in_key: bool = False
    max_repeat: int | None = None  # most onsets of one pitch in a row


@dataclass
class Conditions:
    """Inputs of a melody besides its seed: the condition values and the --in-key scale."""

    key: str | None = None
    style: str | None = None
    first_note: int | None = None
    row: list[int] | None = None  # embedding rows for a one-to-many model
    scale_key: str | None = None  # key whose scale --in-key keeps to


@dataclass
class GeneratedFile:
    path: Path
    seed_steps: int
    generated_steps: int
    notes: list[tuple[int, int, int]] = field(default_factory=list)  # (pitch, start step, end step)

    @property
    def continuation_notes(self) -> int:
        return sum(1 for _, start, _ in self.notes if start >= self.seed_steps)


def generate(options: GenerateOptions) -> list[GeneratedFile]:
    """Write `options.num` melodies that start with the seed; returns what was written."""
    check_sampling_options(options.temperature, options.top_k, options.top_p, options.beam_size, options.num,
                           options.max_repeat)
    program = program_number(options.program)
    requested_key = parse_key_option(options.key) if options.key is not None else None
    device = resolve_device(options.device)
    model, tokenizer, payload = load_model(options.model, device)
    random_seed = options.random_seed if options.random_seed is not None else random.randrange(2**31)
    rng = np.random.default_rng(random_seed)
    seed = _choose_seed(options, tokenizer, payload, isinstance(model, OneToManyRNN), rng)
    conditions = _choose_conditions(options, model, requested_key, seed, tokenizer, rng)
    if options.seed is None and isinstance(model, OneToManyRNN):
        # A model with key tokens saw every piece begin with one, so the melody starts with the key's.
        seed = Seed(tokenizer.key_prefix([], key=conditions.key), description="")
    tempo, meter = _tempo_and_meter(options, seed)
    steps = _continuation_steps(options, tokenizer, meter)
    _log_start(options, seed, conditions, steps, random_seed, tokenizer)

    continuations = _continue(model, tokenizer, seed, steps, options, conditions, random_seed, device)
    written, first_index = [], 1
    for index, continuation in enumerate(continuations):
        ids = seed.ids + continuation
        midi = tokenizer.decode(ids, tempo=tempo, time_signature=meter, program=program, velocity=options.velocity)
        if seed.pickup is not None:
            _write_pickup(midi, seed.pickup, meter, tempo)
        settings = _settings(options, model, seed, conditions, random_seed, tempo, meter, steps, index, tokenizer, program)
        path = write_midi(midi, options.output_dir, "melody", settings, first_index)
        first_index = int(path.stem.rsplit("-", 1)[1]) + 1
        written.append(GeneratedFile(path, tokenizer.time_steps(seed.ids), tokenizer.time_steps(continuation),
                                     tokenizer.decode_notes(ids)))
    for item in written:
        _check_melody(item, options)
    return written


def _continue(
    model: MelodyRNN, tokenizer: Tokenizer, seed: Seed, steps: int, options: GenerateOptions,
    conditions: Conditions, random_seed: int, device: torch.device,
) -> list[list[int]]:
    """Sample or beam-search the continuations of the seed."""
    scale = scale_pitch_classes(conditions.scale_key) if conditions.scale_key is not None else None
    shared = {"scale": scale, "max_repeat": options.max_repeat, "condition_row": conditions.row}
    if options.beam_size is not None:
        return beam_search(model, tokenizer, seed.ids, steps, options.beam_size, options.num, options.stop_at_eos, **shared)
    generator = torch.Generator(device=device).manual_seed(random_seed)
    return sample_continuations(model, tokenizer, seed.ids, steps, options.num, options.temperature, generator,
                                options.stop_at_eos, top_k=options.top_k, top_p=options.top_p, **shared)


def _choose_seed(
    options: GenerateOptions, tokenizer: Tokenizer, payload: dict, one_to_many: bool, rng: np.random.Generator,
) -> Seed:
    if options.seed is not None:
        return parse_seed(options.seed, tokenizer, options.seed_bars)
    if options.seed_bars is not None:
        raise GenerationError("--seed-bars applies to a MIDI file seed only; add --seed FILE.mid or drop --seed-bars")
    if one_to_many:
        return Seed([], description="")  # the condition sets the start; the melody begins after BOS
    # With no seed, the first note is drawn from the pitch frequencies of the training files.
    counts = np.asarray(payload.get("token_counts") or [], dtype=np.float64)
    note_counts = counts[tokenizer.note_on_ids] if counts.size == tokenizer.vocab_size else np.ones(1)
    token = int(tokenizer.note_on_ids[rng.choice(len(note_counts), p=note_counts / note_counts.sum())])
    name = pitch_to_name(tokenizer.pitch_of(token))
    logger.info("no --seed given: starting from %s, drawn from the training pitch distribution", name)
    # A model with key tokens saw every piece begin with one; the key of the single note stands in.
    return Seed([*tokenizer.key_prefix([tokenizer.pitch_of(token)]), token], description=name)


def _choose_conditions(
    options: GenerateOptions, model: MelodyRNN, key: str | None, seed: Seed, tokenizer: Tokenizer,
    rng: np.random.Generator,
) -> Conditions:
    """Check --key, --style and --first-note against the model, draw missing ones, and pick the --in-key scale."""
    first_note = parse_first_note(options.first_note) if options.first_note is not None else None
    kinds = model.config.conditions if isinstance(model, OneToManyRNN) else []
    for kind, value in (("style", options.style), ("first-note", first_note)):
        if value is not None and kind not in kinds:
            raise GenerationError(f"--{kind} needs a model conditioned on {kind}; {_conditions_text(model)}")
    if key is not None and "key" not in kinds and not options.in_key:
        raise GenerationError(f"--key does nothing here because {_conditions_text(model)}; add --in-key to keep to the key's scale")
    conditions = Conditions(key, options.style, first_note)
    if isinstance(model, OneToManyRNN):
        _fill_missing(conditions, model, seed, tokenizer, rng)
        conditions.row = condition_row(model.config, conditions.key if "key" in kinds else None,
                                       conditions.style, conditions.first_note)
    if options.in_key:
        conditions.scale_key = conditions.key or _seed_key(seed if options.seed is not None else None, tokenizer)
    return conditions


def _fill_missing(conditions: Conditions, model: OneToManyRNN, seed: Seed, tokenizer: Tokenizer,
                  rng: np.random.Generator) -> None:
    """Draw each condition value the user left out uniformly from the values the model knows (a seed gives the first note)."""
    config = model.config
    seed_pitches = [pitch for pitch, _, _ in tokenizer.decode_notes(seed.ids)]
    if "first-note" in config.conditions and conditions.first_note is None and seed_pitches:
        conditions.first_note = seed_pitches[0]
    for kind, attribute in (("key", "key"), ("style", "style"), ("first-note", "first_note")):
        if kind in config.conditions and getattr(conditions, attribute) is None:
            known = config.known_values(kind)
            setattr(conditions, attribute, known[int(rng.integers(len(known)))])
            shown = pitch_to_name(conditions.first_note) if kind == "first-note" else getattr(conditions, attribute)
            logger.info("no --%s given: using %s, drawn from the %d values the model knows", kind, shown, len(known))


def _seed_key(seed: Seed | None, tokenizer: Tokenizer) -> str:
    """Return the key of the user's seed for --in-key: its key token, else estimated from its notes."""
    if seed is not None and seed.ids and tokenizer.key_of(seed.ids[0]) is not None:
        return tokenizer.key_of(seed.ids[0])
    notes = tokenizer.decode_notes(seed.ids) if seed is not None else []
    if not notes:
        raise GenerationError("--in-key needs a key: give --key (for example --key \"D minor\") or a --seed with notes")
    key = estimate_key(notes)
    logger.info("--in-key: the seed is in %s (estimated), so new notes keep to that scale", key)
    return key


def _conditions_text(model: MelodyRNN) -> str:
    if isinstance(model, OneToManyRNN):
        return f"this model is one-to-many, conditioned on {', '.join(model.config.conditions)}"
    return "this model is many-to-many and has no conditions (train one with --mode one-to-many)"


def _tempo_and_meter(options: GenerateOptions, seed: Seed) -> tuple[float, tuple[int, int]]:
    meter = seed.time_signature or DEFAULT_TIME_SIGNATURE
    tempo = options.tempo or seed.tempo or DEFAULT_TEMPO_BPM
    if seed.tempo is not None:
        source = "--tempo" if options.tempo else "the seed"
        logger.info("tempo %g BPM from %s, meter %d/%d from the seed", tempo, source, *meter)
    return tempo, meter


def _write_pickup(midi: Any, pickup: tuple[int, int], meter: tuple[int, int], tempo: float) -> None:
    """Open the file with the seed's pickup bar, then the main meter, so bar lines fall where the seed's did."""
    import pretty_midi

    pickup_seconds = 4 * pickup[0] / pickup[1] * 60.0 / tempo
    midi.time_signature_changes = [pretty_midi.TimeSignature(*pickup, 0.0),
                                   pretty_midi.TimeSignature(*meter, pickup_seconds)]


def _continuation_steps(options: GenerateOptions, tokenizer: Tokenizer, meter: tuple[int, int]) -> int:
    if options.length is not None and options.bars is not None:
        raise GenerationError("give either --length or --bars, not both")
    if options.bars is not None:
        steps = options.bars * tokenizer.steps_per_bar(*meter)
    else:
        steps = options.length if options.length is not None else 8 * tokenizer.steps_per_bar(*meter)
    if not 1 <= steps <= MAX_LENGTH:
        raise GenerationError(f"requested length is {steps} steps; it must be 1..{MAX_LENGTH} steps")
    return steps


def _log_start(options: GenerateOptions, seed: Seed, conditions: Conditions, steps: int, random_seed: int,
               tokenizer: Tokenizer) -> None:
    method = f"by beam search of width {options.beam_size}" if options.beam_size else f"at temperature {options.temperature:g}"
    seed_steps = tokenizer.time_steps(seed.ids)
    start = f"seed {seed.description!r} is {seed_steps} steps" if seed.description else "no seed"
    logger.info("%s; generating %d more steps x %d %s (random seed %d)", start, steps, options.num, method, random_seed)
    if conditions.scale_key is not None:
        logger.info("--in-key: new notes keep to the scale of %s", conditions.scale_key)


def _settings(options: GenerateOptions, model: MelodyRNN, seed: Seed, conditions: Conditions, random_seed: int,
              tempo: float, meter: tuple[int, int], steps: int, index: int, tokenizer: Tokenizer,
              program: int) -> dict:
    """Return everything needed to make the melody again, for the text event and the JSON sidecar."""
    return {
        "musicgen_version": __version__, "model": str(options.model),
        "mode": ONE_TO_MANY if isinstance(model, OneToManyRNN) else MANY_TO_MANY,
        "seed": seed.description or None, "seed_steps": tokenizer.time_steps(seed.ids), "length_steps": steps,
        "temperature": options.temperature, "top_k": options.top_k, "top_p": options.top_p,
        "beam_size": options.beam_size, "random_seed": random_seed, "sample_index": index, "num": options.num,
        "key": conditions.key, "style": conditions.style,
        "first_note": pitch_to_name(conditions.first_note) if conditions.first_note is not None else None,
        "in_key": conditions.scale_key, "max_repeat": options.max_repeat,
        "tempo_bpm": tempo, "time_signature": f"{meter[0]}/{meter[1]}",
        "pickup": f"{seed.pickup[0]}/{seed.pickup[1]}" if seed.pickup is not None else None, "program": program,
        "instrument": program_name(program), "velocity": options.velocity,
        "steps_per_quarter": tokenizer.steps_per_quarter, "stop_at_eos": options.stop_at_eos,
    }


def _check_melody(item: GeneratedFile, options: GenerateOptions) -> None:
    """Warn about a melody that collapsed onto one pitch or whose continuation has no notes."""
    if item.generated_steps == 0:
        logger.warning("%s: the melody ended after 0 generated steps (the model emitted EOS at once)", item.path)
    elif item.notes and item.continuation_notes == 0:
        logger.warning("%s: the %d generated steps contain no notes, only the seed's", item.path, item.generated_steps)
    pitches = [pitch for pitch, _, _ in item.notes]
    if not pitches:
        return
    run_pitch, run_length = longest_repeat(pitches)
    if len(set(pitches)) == 1 or run_length > REPEAT_WARNING_ONSETS:
        logger.warning(
            "%s: %s is struck %d times in a row (%d distinct pitches); try --max-repeat, a higher --temperature "
            "or a longer-trained model",
            item.path, pitch_to_name(run_pitch), run_length, len(set(pitches)),
        )


def longest_repeat(pitches: list[int]) -> tuple[int, int]:
    """Return the pitch with the longest run of consecutive onsets, and the run's length."""
    best_pitch, best_length, length = pitches[0], 1, 1
    for previous, current in zip(pitches, pitches[1:]):
        length = length + 1 if current == previous else 1
        if length > best_length:
            best_pitch, best_length = current, length
    return best_pitch, best_length
