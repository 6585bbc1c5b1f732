"""Training throughput of `musicgen train` against a bare PyTorch loop of the same shape, in one run.

The baseline is the loop every tutorial writes: embedding -> nn.LSTM or nn.GRU (2 layers)
-> linear, cross-entropy, Adam, on random windows of the same batch size and length. It
runs with glibc's default malloc and with the MALLOC_* environment variables that keep
freed memory (musicgen sets the same through mallopt at start-up). `musicgen train` runs
on the bundled Bach melodies with its defaults (last checkpoint every 200 steps, a CSV row
every 50) and --max-steps. Its training seconds come from its metrics CSV: they cover the
loop with batch assembly, logging and checkpoint writes, but not start-up and validation.
Every variant runs in its own process, the variants alternate within each repeat, and
tokens/s count every position of every window (batch x sequence length x steps).

Also measured: 2-process DDP (torchrun, gloo) against 1 process, bf16 autocast, and
scheduled sampling (teacher-forcing ratio 0.5, one step at a time).

    .venv/bin/python benchmarks/train_throughput.py            # the full table (about 20 minutes on 2 cores)
    .venv/bin/python benchmarks/train_throughput.py --quick    # one repeat, hidden 256 only
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MELODIES = REPO / "midi_data" / "bach_melodies"
VOCAB, EMBEDDING, LAYERS = 66, 64, 2
KEEP_FREED_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_TOP_PAD_": str(64 << 20)}


def bare_loop(cell: str, hidden: int, batch: int, seq_len: int, steps: int) -> float:
    """Train the plain model for `steps` steps on random windows; return tokens/s over all of them."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    embedding = nn.Embedding(VOCAB, EMBEDDING)
    recurrent = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](EMBEDDING, hidden, num_layers=LAYERS, dropout=0.2, batch_first=True)
    output = nn.Linear(hidden, VOCAB)
    parameters = [*embedding.parameters(), *recurrent.parameters(), *output.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=2e-3)
    windows = torch.randint(3, VOCAB, (batch * 8, seq_len + 1))
    started = time.perf_counter()
    for step in range(steps):
        window = windows[(step % 8) * batch : (step % 8 + 1) * batch]
        hidden_states, _ = recurrent(embedding(window[:, :-1]))
        logits = output(nn.functional.dropout(hidden_states, 0.2))
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), window[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
    return steps * batch * seq_len / (time.perf_counter() - started)


def run_bare(cell: str, hidden: int, args: argparse.Namespace, steps: int, keep_memory: bool) -> float:
    environment = {**os.environ, **(KEEP_FREED_MEMORY if keep_memory else {})}
    command = [sys.executable, __file__, "--bare", cell, str(hidden), str(args.batch), str(args.seq_len), str(steps)]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    return float(completed.stdout.strip().splitlines()[-1])


def run_musicgen(cell: str, hidden: int, args: argparse.Namespace, steps: int, work: Path, *extra: str,
                 processes: int = 1, environment: dict[str, str] | None = None) -> tuple[float, float]:
    """Run `musicgen train`; return (loop tokens/s from its CSV, whole-command tokens/s from wall time)."""
    output = Path(tempfile.mkdtemp(dir=work)) / "m.pt"
    options = ["train", str(MELODIES), "--output", str(output), "--cell", cell, "--hidden-size", str(hidden),
               "--layers", str(LAYERS), "--embedding-size", str(EMBEDDING), "--batch-size", str(args.batch),
               "--seq-len", str(args.seq_len), "--max-steps", str(steps), "--epochs", "1000", "--no-progress",
               "--cache-dir", str(work / "cache"), "--random-seed", "0", *extra]
    if processes == 1:
        command = [sys.executable, "-m", "musicgen", *options]
    else:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        command = [torchrun, "--nnodes", "1", "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
                   "--master_port", str(_free_port()), "-m", "musicgen", *options]
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(environment or {})}, check=True, cwd=REPO)
    wall = time.perf_counter() - started
    with open(output.with_suffix(".metrics.csv"), newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    tokens = steps * args.batch * args.seq_len
    shutil.rmtree(output.parent)
    return tokens / float(rows[-1]["seconds"]), tokens / wall


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="musicgen-bench-"))
    subprocess.run([sys.executable, "-m", "musicgen", "train", str(MELODIES), "--output", str(work / "warm.pt"),
                    "--max-steps", "1", "--cache-dir", str(work / "cache"), "--no-progress"],
                   capture_output=True, check=True, cwd=REPO)  # fills the token cache
    print(f"# {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average before: {os.getloadavg()[0]:.2f}; batch {args.batch}, "
          f"sequence {args.seq_len}, {LAYERS} layers, {args.repeats} repeats (median)", flush=True)
    hiddens = (256,) if args.quick else (256, 512)
    print("| model | bare, glibc default | bare, MALLOC_* | musicgen train (loop) | musicgen train (whole command) "
          "| musicgen, MUSICGEN_MALLOC=default | musicgen / fastest bare (range over repeats) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cell in ("lstm", "gru"):
        for hidden in hiddens:
            steps = args.steps * 256 // hidden
            results: dict[str, list[float]] = {key: [] for key in ("default", "kept", "loop", "whole", "glibc")}
            for _ in range(args.repeats):
                results["default"].append(run_bare(cell, hidden, args, steps, keep_memory=False))
                results["kept"].append(run_bare(cell, hidden, args, steps, keep_memory=True))
                loop, whole = run_musicgen(cell, hidden, args, steps, work)
                results["loop"].append(loop)
                results["whole"].append(whole)
                results["glibc"].append(run_musicgen(cell, hidden, args, steps, work,
                                                     environment={"MUSICGEN_MALLOC": "default"})[0])
            median = {key: statistics.median(values) for key, values in results.items()}
            ratio = median["loop"] / max(median["default"], median["kept"])
            # The ratio of each repeat against the faster bare loop of the same repeat shows the noise.
            ratios = [loop / max(default, kept) for loop, default, kept in zip(results["loop"], results["default"], results["kept"])]
            print(f"| {cell.upper()} {LAYERS}x{hidden} | {median['default']:,.0f} | {median['kept']:,.0f} | "
                  f"{median['loop']:,.0f} | {median['whole']:,.0f} | {median['glibc']:,.0f} | "
                  f"{ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |", flush=True)
    extras(args, work)
    print(f"# load average after: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(work)


def extras(args: argparse.Namespace, work: Path) -> None:
    """DDP, bf16 and scheduled sampling, each against plain musicgen train on LSTM 2x256."""
    steps = args.steps
    print("\n| variant (LSTM 2x256, musicgen train) | tokens/s (loop) | against 1 process fp32 |")
    print("|---|---:|---:|")
    results: dict[str, list[float]] = {key: [] for key in ("one", "two", "bf16", "sampling")}
    for _ in range(args.repeats):
        results["one"].append(run_musicgen("lstm", 256, args, steps, work)[0])
        rank_threads = max(1, (args.threads or os.cpu_count() or 2) // 2)
        results["two"].append(run_musicgen("lstm", 256, args, steps, work, processes=2,
                                           environment={"OMP_NUM_THREADS": str(rank_threads)})[0])
        results["bf16"].append(run_musicgen("lstm", 256, args, steps, work, "--precision", "bf16")[0])
        results["sampling"].append(run_musicgen("lstm", 256, args, max(steps // 4, 4), work,
                                                "--teacher-forcing-ratio", "0.5")[0])
    median = {key: statistics.median(values) for key, values in results.items()}
    labels = {"one": "1 process, fp32", "two": "2 processes (torchrun, gloo), same global batch",
              "bf16": "--precision bf16", "sampling": "--teacher-forcing-ratio 0.5"}
    for key, label in labels.items():
        print(f"| {label} | {median[key]:,.0f} | {median[key] / median['one']:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run at hidden 256 (fewer at 512)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="hidden 256 only, one repeat")
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP_NUM_THREADS of every single process (DDP ranks get threads / 2); 0 leaves it unset")
    parser.add_argument("--bare", nargs=5, metavar=("CELL", "HIDDEN", "BATCH", "SEQ_LEN", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        cell, hidden, batch, seq_len, steps = args.bare
        print(bare_loop(cell, int(hidden), int(batch), int(seq_len), int(steps)))
        return
    if args.quick:
        args.repeats = 1
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    measure(args)


if __name__ == "__main__":
    main()
