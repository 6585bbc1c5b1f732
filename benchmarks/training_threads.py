"""Training speed of torch on 1 CPU thread against 2 threads, alternating in one run.

Each round starts one process per setting (OMP_NUM_THREADS=1, then 2), and each process
trains the 2x256 model of the shipped checkpoints on real windows of the bundled Bach
melodies for a few batches and prints its tokens per second. The baseline is 2 threads,
which is what torch picks on a 2-core machine.

    .venv/bin/python benchmarks/training_threads.py --rounds 5 --cell gru
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def measure(cell: str, batches: int, seq_len: int) -> float:
    """Train `batches` batches of 64 windows and return target tokens per second."""
    import torch
    import torch.nn.functional as F

    from musicgen.config import ModelConfig
    from musicgen.data.corpus import encode_folder
    from musicgen.data.dataset import cut_windows
    from musicgen.models import build_model
    from musicgen.tokenizer.melody import MelodyTokenizer

    torch.manual_seed(0)
    tokenizer = MelodyTokenizer()
    corpus = encode_folder(REPO_ROOT / "midi_data" / "bach_melodies", tokenizer, show_progress=False)
    windows = cut_windows(corpus.files, seq_len, tokenizer.pad_id)
    model = build_model(ModelConfig(tokenizer.vocab_size, cell, 64, 256, 2, 0.2))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    started = time.perf_counter()
    tokens = 0
    for batch_index in range(batches):
        batch = windows[batch_index * 64 : (batch_index + 1) * 64]
        logits, _ = model(batch[:, :-1])
        targets = batch[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=tokenizer.pad_id)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tokens += int((targets != tokenizer.pad_id).sum())
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cell", choices=["lstm", "gru"], default="gru")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(args.cell, args.batches, args.seq_len))
        return
    results: dict[int, list[float]] = {1: [], 2: []}
    for round_index in range(args.rounds):
        for threads in (1, 2):
            command = [sys.executable, __file__, "--child", "1", "--cell", args.cell, "--batches", str(args.batches),
                       "--seq-len", str(args.seq_len)]
            environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
            output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
            results[threads].append(float(output.split()[-1]))
            load = os.getloadavg()[0]
            print(f"round {round_index + 1}: {threads} thread(s) {results[threads][-1]:,.0f} tokens/s (load {load:.1f})")
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(f"median tokens/s: 1 thread {one:,.0f}, 2 threads (baseline) {two:,.0f}, ratio {one / two:.2f}")
    print(f"range: 1 thread {min(results[1]):,.0f}..{max(results[1]):,.0f}, "
          f"2 threads {min(results[2]):,.0f}..{max(results[2]):,.0f}")


if __name__ == "__main__":
    main()
