"""The generate workflow: load a model, parse the seed, sample, check and write .mid files."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from musicgen import __version__
from musicgen.checkpoint import load_model
from musicgen.constants import DEFAULT_PROGRAM, DEFAULT_TEMPO_BPM, DEFAULT_TIME_SIGNATURE, DEFAULT_VELOCITY
from musicgen.device import resolve_device
from musicgen.errors import MusicgenError
from musicgen.export import write_midi
from musicgen.notes import pitch_to_name
from musicgen.sampling import sample_continuations
from musicgen.seed import Seed, parse_seed
from musicgen.tokenizer.melody import MelodyTokenizer

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
    num: int = 1
    output_dir: Path = Path("generated")
    random_seed: int | None = None
    tempo: float | None = None
    program: int = DEFAULT_PROGRAM
    velocity: int = DEFAULT_VELOCITY
    device: str = "auto"
    stop_at_eos: bool = False


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
    device = resolve_device(options.device)
    model, tokenizer, payload = load_model(options.model, device)
    seed = _choose_seed(options, tokenizer, payload)
    tempo, meter = _tempo_and_meter(options, seed)
    steps = _continuation_steps(options, tokenizer, meter)
    random_seed = options.random_seed if options.random_seed is not None else random.randrange(2**31)
    generator = torch.Generator(device=device).manual_seed(random_seed)
    logger.info("seed %r is %d steps; generating %d more steps x %d at temperature %g (random seed %d)",
                seed.description, seed.steps, steps, options.num, options.temperature, random_seed)

    continuations = sample_continuations(model, tokenizer, seed.ids, steps, options.num, options.temperature,
                                         generator, options.stop_at_eos)
    written = []
    for index, continuation in enumerate(continuations):
        ids = seed.ids + continuation
        midi = tokenizer.decode(ids, tempo=tempo, time_signature=meter, program=options.program, velocity=options.velocity)
        settings = _settings(options, seed, random_seed, tempo, meter, steps, index, tokenizer)
        path = write_midi(midi, options.output_dir, "melody", settings)
        written.append(GeneratedFile(path, seed.steps, len(continuation), tokenizer.decode_notes(ids)))
    for item in written:
        _check_melody(item, options)
    return written


def _choose_seed(options: GenerateOptions, tokenizer: MelodyTokenizer, payload: dict) -> Seed:
    if options.seed is not None:
        return parse_seed(options.seed, tokenizer, options.seed_bars)
    # With no seed, the first note is drawn from the pitch frequencies of the training files.
    counts = np.asarray(payload.get("token_counts") or [], dtype=np.float64)
    note_counts = counts[tokenizer.first_note_on_id :] if counts.size == tokenizer.vocab_size else np.ones(1)
    rng = np.random.default_rng(options.random_seed)
    token = tokenizer.first_note_on_id + int(rng.choice(len(note_counts), p=note_counts / note_counts.sum()))
    name = pitch_to_name(tokenizer.pitch_of(token))
    logger.info("no --seed given: starting from %s, drawn from the training pitch distribution", name)
    return Seed([token], description=name)


def _tempo_and_meter(options: GenerateOptions, seed: Seed) -> tuple[float, tuple[int, int]]:
    meter = seed.time_signature or DEFAULT_TIME_SIGNATURE
    tempo = options.tempo or seed.tempo or DEFAULT_TEMPO_BPM
    if seed.tempo is not None:
        source = "--tempo" if options.tempo else "the seed"
        logger.info("tempo %g BPM from %s, meter %d/%d from the seed", tempo, source, *meter)
    return tempo, meter


def _continuation_steps(options: GenerateOptions, tokenizer: MelodyTokenizer, meter: tuple[int, int]) -> int:
    if options.length is not None and options.bars is not None:
        raise GenerationError("give either --length or --bars, not both")
    if options.bars is not None:
        steps = options.bars * tokenizer.steps_per_bar(*meter)
    else:
        steps = options.length if options.length is not None else 8 * tokenizer.steps_per_bar(*meter)
    if not 1 <= steps <= MAX_LENGTH:
        raise GenerationError(f"requested length is {steps} steps; it must be 1..{MAX_LENGTH} steps")
    return steps


def _settings(options: GenerateOptions, seed: Seed, random_seed: int, tempo: float, meter: tuple[int, int],
              steps: int, index: int, tokenizer: MelodyTokenizer) -> dict:
    return {
        "musicgen_version": __version__, "model": str(options.model), "seed": seed.description,
        "seed_steps": seed.steps, "length_steps": steps, "temperature": options.temperature,
        "random_seed": random_seed, "sample_index": index, "num": options.num, "tempo_bpm": tempo,
        "time_signature": f"{meter[0]}/{meter[1]}", "program": options.program, "velocity": options.velocity,
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
            "%s: %s is struck %d times in a row (%d distinct pitches); try a higher --temperature or a longer-trained model",
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
