"""Sample or beam-search continuations from a trained model, carrying the recurrent state step by step.

Each step first masks the tokens that may not come next, at all or right after the token
just chosen. Sampling then draws one token per melody with `choose_next` (temperature,
top-k, top-p, and argmax at temperature 0), and `beam_search` instead extends the best
beams. The model reads the prompt once and then
only the token just chosen, so a step costs the same however long the melody already is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from musicgen.errors import MusicgenError
from musicgen.models import MelodyRNN, OneToManyRNN
from musicgen.models.one_to_many import ConditionedState
from musicgen.tokenizer import Tokenizer

MAX_BEAM_SIZE = 64
# Tokens drawn at most per time step, plus a fixed allowance, when some tokens (NOTE_ON,
# VELOCITY...) take no time, so that a model that never moves time on still stops.
MAX_TOKENS_PER_STEP, EXTRA_TOKENS = 8, 64


class SamplingError(MusicgenError, ValueError):
    """A sampling setting outside its allowed range; the message names the option and the value."""


def check_sampling_options(
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, beam_size: int | None = None,
    num: int = 1, max_repeat: int | None = None,
) -> None:
    """Raise SamplingError for a setting out of range or a combination that does not apply."""
    if not temperature >= 0 or math.isinf(temperature):
        raise SamplingError(f"--temperature must be a finite number >= 0 (received {temperature}); 0 takes the most likely token")
    if top_k is not None and top_k < 1:
        raise SamplingError(f"--top-k must be at least 1 (received {top_k}); it keeps the k most likely tokens")
    if top_p is not None and not 0 < top_p <= 1:
        raise SamplingError(f"--top-p must be in (0, 1] (received {top_p}); 0.9 keeps the most likely tokens that make up 90 % of the probability")
    if max_repeat is not None and max_repeat < 1:
        raise SamplingError(f"--max-repeat must be at least 1 (received {max_repeat})")
    if beam_size is None:
        return
    if not 1 <= beam_size <= MAX_BEAM_SIZE:
        raise SamplingError(f"--beam-size must be in 1..{MAX_BEAM_SIZE} (received {beam_size})")
    if top_k is not None or top_p is not None:
        raise SamplingError("--beam-size searches for the most likely melodies and draws nothing; drop --top-k and --top-p")
    if num > beam_size:
        raise SamplingError(f"--num {num} is larger than --beam-size {beam_size}; beam search returns at most --beam-size melodies")


def choose_next(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token id per row of `logits` (batch, vocab), where forbidden tokens already hold -inf."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None:
        logits = keep_top_k(logits, top_k)
    if top_p is not None:
        logits = keep_top_p(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set all but the k largest logits of each row to -inf; exactly k stay, even when values tie."""
    values, indices = logits.topk(min(k, logits.shape[-1]), dim=-1)
    return torch.full_like(logits, -torch.inf).scatter(-1, indices, values)


def keep_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches p (nucleus sampling)."""
    sorted_probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
    # A token stays when the tokens ranked above it hold less than p, so the first always stays.
    keep_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, -torch.inf)


class RepeatGuard:
    """Forbid a row to strike one pitch more than `max_repeat` times in a row.

    A run counts note onsets of one pitch. HOLD and REST steps between them do not end
    it, as in `musicgen.generation.longest_repeat`. The seed's notes start the runs.
    """

    def __init__(self, tokenizer: Tokenizer, max_repeat: int, seed_ids: list[int], rows: int, device: torch.device):
        self.is_note_on = torch.from_numpy(tokenizer.note_on_table).to(device)
        self.max_repeat = max_repeat
        last, run = -1, 0
        for token in seed_ids:
            if tokenizer.is_note_on(token):
                last, run = token, (run + 1 if token == last else 1)
        self.last = torch.full((rows,), last, dtype=torch.long, device=device)
        self.run = torch.full((rows,), run, dtype=torch.long, device=device)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Return `logits` with -inf at the last pitch of each row whose run is full."""
        blocked = (self.run >= self.max_repeat) & (self.last >= 0)
        penalty = torch.where(blocked, -torch.inf, 0.0).unsqueeze(1)
        return logits.scatter_add(1, self.last.clamp(min=0).unsqueeze(1), penalty)

    def update(self, tokens: torch.Tensor) -> None:
        is_note = self.is_note_on[tokens]
        same = is_note & (tokens == self.last)
        self.run = torch.where(same, self.run + 1, torch.where(is_note, 1, self.run))
        self.last = torch.where(is_note, tokens, self.last)

    def reorder(self, index: torch.Tensor) -> None:
        self.last, self.run = self.last[index], self.run[index]


@torch.no_grad()
def sample_continuations(
    model: MelodyRNN,
    tokenizer: Tokenizer,
    seed_ids: list[int],
    steps: int,
    num: int = 1,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    stop_at_eos: bool = False,
    *,
    top_k: int | None = None,
    top_p: float | None = None,
    scale: frozenset[int] | None = None,
    max_repeat: int | None = None,
    condition_row: list[int] | None = None,
) -> list[list[int]]:
    """Return `num` continuations of `seed_ids`, each `steps` time steps long (seed excluded).

    A melody-grid token is one step. An event encoding's TIME_SHIFT_n is n steps and its
    other tokens take no time, so an event melody has as many tokens as it needs to last
    `steps`.
    PAD and BOS are never drawn. EOS is drawn only with `stop_at_eos`, and a melody ends
    there. `scale` (pitch classes, 0 is C) forbids new notes outside it, `max_repeat`
    limits runs of one pitch (see RepeatGuard), and a one-to-many model starts from the
    state of `condition_row`. The seed itself is never changed.
    """
    check_sampling_options(temperature, top_k, top_p, None, num, max_repeat)
    device = model.output.weight.device
    with one_thread_on_cpu(device):
        logits, state = _read_prompt(model, tokenizer, seed_ids, num, condition_row)
        bias = token_bias(tokenizer, stop_at_eos, scale, device)
        after = follow_bias(tokenizer, device)
        previous = torch.full((num,), ([tokenizer.bos_id, *seed_ids])[-1], dtype=torch.long, device=device)
        guard = RepeatGuard(tokenizer, max_repeat, seed_ids, num, device) if max_repeat else None
        clock = _Clock(tokenizer, steps, num, device)
        drawn = []
        finished = torch.zeros(num, dtype=torch.bool, device=device)
        # On the grid without EOS every row ends at the last token, so the loop skips the
        # per-step check, which waits for the device.
        may_end_early = stop_at_eos or not clock.on_grid
        for index in range(clock.max_tokens):
            logits = logits + bias + after[previous]
            if guard is not None:
                logits = guard.apply(logits)
            tokens = choose_next(logits, temperature, top_k, top_p, generator)
            # A melody that has ended (EOS, or its time is up) keeps emitting EOS, which is cut off below.
            tokens = torch.where(finished, tokenizer.eos_id, tokens)
            finished |= (tokens == tokenizer.eos_id) | clock.advance(tokens)
            drawn.append(tokens)
            previous = tokens
            if guard is not None:
                guard.update(tokens)
            if index + 1 == clock.max_tokens or (may_end_early and bool(finished.all())):
                break
            logits, state = model(tokens.unsqueeze(1), state)
            logits = logits[:, -1, :]
    rows = torch.stack(drawn, dim=1).tolist() if drawn else [[] for _ in range(num)]
    return [clock.fit(_cut_at_eos(row, tokenizer.eos_id)) for row in rows]


@torch.no_grad()
def beam_search(
    model: MelodyRNN,
    tokenizer: Tokenizer,
    seed_ids: list[int],
    steps: int,
    beam_size: int,
    num: int = 1,
    stop_at_eos: bool = False,
    *,
    scale: frozenset[int] | None = None,
    max_repeat: int | None = None,
    condition_row: list[int] | None = None,
) -> list[list[int]]:
    """Return the `num` most likely continuations found by a beam search of width `beam_size`.

    Beams are ranked by the sum of their tokens' log-probabilities under the same masks
    as sampling. A beam that has emitted EOS (only with `stop_at_eos`) keeps its score
    and adds nothing more. Beam size 1 takes the most likely token at every step, as
    temperature 0 does.
    """
    check_sampling_options(beam_size=beam_size, num=num, max_repeat=max_repeat)
    device = model.output.weight.device
    with one_thread_on_cpu(device):
        logits, state = _read_prompt(model, tokenizer, seed_ids, 1, condition_row)
        bias = token_bias(tokenizer, stop_at_eos, scale, device)
        only_eos = torch.full_like(bias, -torch.inf)
        only_eos[tokenizer.eos_id] = 0.0
        after = follow_bias(tokenizer, device)
        previous = torch.tensor([([tokenizer.bos_id, *seed_ids])[-1]], device=device)
        guard = RepeatGuard(tokenizer, max_repeat, seed_ids, 1, device) if max_repeat else None
        scores = torch.zeros(1, device=device)
        finished = torch.zeros(1, dtype=torch.bool, device=device)
        clock = _Clock(tokenizer, steps, 1, device)
        # Per step, each surviving beam's token and the beam it extends; read backwards at the end.
        chosen_tokens, parents = [], []
        for _ in range(clock.max_tokens):
            log_probs = torch.log_softmax(logits + bias + after[previous], dim=-1)
            if guard is not None:
                log_probs = guard.apply(log_probs)
            log_probs = torch.where(finished.unsqueeze(1), only_eos, log_probs)
            # Every beam proposes every token; the beam_size best sums survive.
            candidates = (scores.unsqueeze(1) + log_probs).flatten()
            scores, flat = candidates.topk(min(beam_size, candidates.numel()))
            beams, tokens = flat // log_probs.shape[1], flat % log_probs.shape[1]
            chosen_tokens.append(tokens)
            previous = tokens
            parents.append(beams)
            clock.reorder(beams)
            # A beam whose time is up adds only EOS from here on, which is cut off below.
            finished = finished[beams] | (tokens == tokenizer.eos_id) | clock.advance(tokens)
            if guard is not None:
                guard.reorder(beams)
                guard.update(tokens)
            if bool(finished.all()):
                break
            logits, state = model(tokens.unsqueeze(1), _select_rows(state, beams))
            logits = logits[:, -1, :]
    return [clock.fit(_cut_at_eos(row, tokenizer.eos_id)) for row in _backtrack(chosen_tokens, parents, num)]


class _Clock:
    """Counts the time steps each row has drawn, to end every melody after `steps` of them."""

    def __init__(self, tokenizer: Tokenizer, steps: int, rows: int, device: torch.device) -> None:
        self.tokenizer, self.steps = tokenizer, steps
        self.step_table = torch.from_numpy(tokenizer.step_table).to(device)
        self.elapsed = torch.zeros(rows, dtype=torch.long, device=device)
        # On a grid every drawable token is one step, so `steps` tokens always suffice.
        self.on_grid = bool((tokenizer.step_table[tokenizer.note_on_ids] > 0).all())
        self.max_tokens = steps if self.on_grid else steps * MAX_TOKENS_PER_STEP + EXTRA_TOKENS

    def advance(self, tokens: torch.Tensor) -> torch.Tensor:
        """Add the steps of `tokens` (one per row); return which rows have reached `steps`."""
        self.elapsed += self.step_table[tokens]
        return self.elapsed >= self.steps

    def reorder(self, index: torch.Tensor) -> None:
        self.elapsed = self.elapsed[index]

    def fit(self, tokens: list[int]) -> list[int]:
        """Shorten a last token that runs past `steps` (a long TIME_SHIFT) to end exactly there."""
        elapsed = self.tokenizer.time_steps(tokens)
        if elapsed <= self.steps or not tokens:
            return tokens
        remaining = self.steps - (elapsed - int(self.tokenizer.step_table[tokens[-1]]))
        exact = [int(token) for token in np.flatnonzero(self.tokenizer.step_table == remaining)]
        return [*tokens[:-1], exact[0]] if exact else tokens


def _backtrack(chosen_tokens: list[torch.Tensor], parents: list[torch.Tensor], num: int) -> list[list[int]]:
    """Return the token sequences of the first `num` final beams, following each beam's parents back to step 0."""
    tokens_by_step = [tokens.tolist() for tokens in chosen_tokens]
    parents_by_step = [beams.tolist() for beams in parents]
    sequences = []
    for final in range(min(num, len(tokens_by_step[-1]))):
        sequence, beam = [], final
        for step in range(len(tokens_by_step) - 1, -1, -1):
            sequence.append(tokens_by_step[step][beam])
            beam = parents_by_step[step][beam]
        sequences.append(sequence[::-1])
    return sequences


def token_bias(tokenizer: Tokenizer, stop_at_eos: bool, scale: frozenset[int] | None, device: torch.device) -> torch.Tensor:
    """Return a (vocab,) tensor that is -inf for tokens that may never be chosen and 0 elsewhere."""
    bias = torch.zeros(tokenizer.vocab_size, device=device)
    # A key token belongs right after BOS, so it is part of the seed and never drawn.
    banned = [tokenizer.pad_id, tokenizer.bos_id, *sorted(getattr(tokenizer, "key_ids", ()))]
    if not stop_at_eos:
        banned.append(tokenizer.eos_id)
    if scale is not None:
        banned += [int(token) for token in tokenizer.note_on_ids if tokenizer.pitch_of(int(token)) % 12 not in scale]
    bias[banned] = -torch.inf
    return bias


def follow_bias(tokenizer: Tokenizer, device: torch.device) -> torch.Tensor:
    """Return a (vocab, vocab) tensor: row t is -inf at the tokens that may not come right after token t."""
    bias = torch.zeros(tokenizer.vocab_size, tokenizer.vocab_size, device=device)
    for token, forbidden in tokenizer.forbidden_after().items():
        bias[token, forbidden] = -torch.inf
    return bias


def _read_prompt(
    model: MelodyRNN, tokenizer: Tokenizer, seed_ids: list[int], rows: int, condition_row: list[int] | None,
) -> tuple[torch.Tensor, ConditionedState]:
    """Run BOS and the seed through the model in one call; return the last step's logits (rows, vocab) and the state."""
    device = model.output.weight.device
    prompt = torch.tensor([[tokenizer.bos_id, *seed_ids]], device=device).expand(rows, -1)
    state = None
    if isinstance(model, OneToManyRNN):
        if condition_row is None:
            raise ValueError("a one-to-many model needs `condition_row`")
        state = model.start_state(torch.tensor([condition_row], device=device).expand(rows, -1))
    logits, state = model(prompt, state)
    return logits[:, -1, :], state


def _select_rows(state: ConditionedState, rows: torch.Tensor) -> ConditionedState:
    """Reorder the batch dimension (dim 1 of every tensor) of a state, nested tuples included."""
    if isinstance(state, tuple):
        return tuple(_select_rows(part, rows) for part in state)  # type: ignore[return-value]
    return state.index_select(1, rows)


@contextmanager
def one_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """Run torch on one CPU thread inside the block, then restore the previous thread count.

    Each generation step is one small matrix product per layer, and on busy cores the
    OpenMP threads of torch spin-wait for each other at every step. With torch 2.13 on
    2 shared cores, one LSTM step (64 units, batch 1) took 0.1 ms on one thread and 2 ms
    on two. NOTE: on idle cores two threads are faster for a large batch: 64 melodies of
    a 2x384 LSTM ran at 20,269 tokens/s here against 32,277 for a 2-thread loop.
    """
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _cut_at_eos(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[: tokens.index(eos_id)] if eos_id in tokens else tokens
