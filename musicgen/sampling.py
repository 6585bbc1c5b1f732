"""Sample continuations from a trained model, carrying the recurrent state step by step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from musicgen.models import MelodyRNN
from musicgen.tokenizer.melody import MelodyTokenizer


@torch.no_grad()
def sample_continuations(
    model: MelodyRNN,
    tokenizer: MelodyTokenizer,
    seed_ids: list[int],
    steps: int,
    num: int = 1,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    stop_at_eos: bool = False,
) -> list[list[int]]:
    """Return `num` continuations of `seed_ids`, each up to `steps` grid tokens (seed excluded).

    The model reads BOS and the seed once; after that each step feeds only the token
    just drawn, with the state carried over. Temperature 0 takes the most likely token
    (greedy). PAD and BOS are never drawn; EOS is drawn only with `stop_at_eos`, and a
    sequence ends there.
    """
    device = model.output.weight.device
    with _one_thread_on_cpu(device):
        return _sample(model, tokenizer, seed_ids, steps, num, temperature, generator, stop_at_eos)


@contextmanager
def _one_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """Run torch on one CPU thread inside the block, then restore the previous thread count.

    Each generation step is one small matrix product per layer, and on busy cores the
    OpenMP threads of torch spin-wait for each other at every step. With torch 2.13 on
    2 shared cores, one LSTM step (64 units, batch 1) took 0.1 ms on one thread and 2 ms
    on two. NOTE: a large --num on an idle many-core machine may lose some speed, which
    was not measured.
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


def _sample(
    model: MelodyRNN, tokenizer: MelodyTokenizer, seed_ids: list[int], steps: int, num: int, temperature: float,
    generator: torch.Generator | None, stop_at_eos: bool,
) -> list[list[int]]:
    device = model.output.weight.device
    prompt = torch.tensor([[tokenizer.bos_id, *seed_ids]], device=device).expand(num, -1)
    banned = [tokenizer.pad_id, tokenizer.bos_id] + ([] if stop_at_eos else [tokenizer.eos_id])

    # Read the prompt in one call; keep the logits of its last step.
    logits, state = model(prompt)
    logits = logits[:, -1, :]
    drawn = torch.empty((num, steps), dtype=torch.long, device=device)
    finished = torch.zeros(num, dtype=torch.bool, device=device)
    for step in range(steps):
        logits[:, banned] = -torch.inf
        if temperature == 0:
            tokens = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            tokens = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        # A sequence that has ended keeps emitting EOS, which is cut off below.
        tokens = torch.where(finished, torch.full_like(tokens, tokenizer.eos_id), tokens)
        drawn[:, step] = tokens
        finished |= tokens == tokenizer.eos_id
        if bool(finished.all()):
            drawn = drawn[:, : step + 1]
            break
        logits, state = model(tokens.unsqueeze(1), state)
        logits = logits[:, -1, :]
    return [_cut_at_eos(row, tokenizer.eos_id) for row in drawn.tolist()]


def _cut_at_eos(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[: tokens.index(eos_id)] if eos_id in tokens else tokens
