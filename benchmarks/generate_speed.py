"""Generation speed of musicgen against a bare PyTorch loop and the sliding-window method, and beam search cost.

Every method runs on the same checkpoint (default: the bundled models/bach_melody_lstm.pt,
an LSTM of 2 layers x 256 units) in this one process. The methods take turns within each
round, so load from other jobs on a shared machine hits them alike. The script reports
the median and the best round (least disturbed by other jobs) of each method, and the
median of the per-round ratios.

- musicgen generate (CLI): `musicgen generate --num N --length L` in a subprocess, Python
  start-up, imports, model loading and writing N .mid and .json files included. The
  start-up alone (`python -c "import musicgen.generation"`) is timed as well.
- musicgen generate (workflow): `musicgen.generation.generate` in this process: model
  loading, sampling and writing the files.
- musicgen sampler: `musicgen.sampling.sample_continuations` alone.
- bare loop: the least a PyTorch user writes: feed the last token, carry the hidden
  state, softmax, multinomial; batch N. It runs once with torch's default thread count
  and once on one thread (musicgen's sampler uses one thread on the CPU). The ratios
  compare with the faster of the two in each round.
- sliding window: the method of many tutorials. Every step re-runs the model from a zero
  state over the last W tokens (W = 100) and samples from the last output; batch 1, on
  one thread, which on a busy 2-core machine was many times faster than two.
- beam search: `musicgen.sampling.beam_search` for each width; the cost per beam is the
  time per step divided by the width.

Tokens per second count generated tokens: N x L for batched methods, L for batch 1.

    python benchmarks/generate_speed.py
    python benchmarks/generate_speed.py --rounds 5 --num 64 --length 512 --window-length 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from musicgen.checkpoint import load_model  # noqa: E402
from musicgen.generation import GenerateOptions, generate  # noqa: E402
from musicgen.sampling import beam_search, sample_continuations  # noqa: E402

SEED = "C4"


def bare_loop(model, prompt: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """Sample `steps` tokens per row, feeding back only the last token and carrying the state."""
    with torch.no_grad():
        logits, state = model(prompt)
        tokens = []
        for _ in range(steps):
            probs = torch.softmax(logits[:, -1, :], dim=-1)
            token = torch.multinomial(probs, 1, generator=generator)
            tokens.append(token)
            logits, state = model(token, state)
    return torch.cat(tokens, dim=1)


def sliding_window(model, prompt: list[int], steps: int, window: int, generator: torch.Generator) -> list[int]:
    """Sample `steps` tokens for one melody, re-running the model over the last `window` tokens at every step."""
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            logits, _ = model(torch.tensor([tokens[-window:]]))
            probs = torch.softmax(logits[0, -1], dim=-1)
            tokens.append(int(torch.multinomial(probs, 1, generator=generator)))
    return tokens[len(prompt) :]


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def one_thread(function: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function()
        finally:
            torch.set_num_threads(previous)
    return run


def cli_run(model_path: Path, num: int, length: int, output_dir: Path) -> None:
    command = [sys.executable, "-m", "musicgen", "generate", "--model", str(model_path), "--seed", SEED, "--num", str(num),
               "--length", str(length), "--output-dir", str(output_dir), "--random-seed", "1", "--device", "cpu"]
    subprocess.run(command, check=True, capture_output=True, cwd=REPO_ROOT)


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """Return seconds per method and round, every method running once per round."""
    model, tokenizer, _ = load_model(args.model, torch.device("cpu"))
    seed_ids = [tokenizer.note_on_id(60)]
    prompt = torch.tensor([[tokenizer.bos_id, *seed_ids]]).expand(args.num, -1)
    generator = torch.Generator().manual_seed(0)
    output_dir = Path(tempfile.mkdtemp(prefix="generate_speed_"))
    methods: dict[str, Callable[[], object]] = {
        "musicgen generate (CLI)": lambda: cli_run(args.model, args.num, args.length, output_dir / "cli"),
        "start-up of the CLI alone": lambda: subprocess.run(
            [sys.executable, "-c", "import musicgen.generation"], check=True, cwd=REPO_ROOT),
        "musicgen generate (workflow)": lambda: generate(GenerateOptions(
            model=args.model, seed=SEED, num=args.num, length=args.length, output_dir=output_dir / "workflow",
            random_seed=1, device="cpu")),
        "musicgen sampler": lambda: sample_continuations(model, tokenizer, seed_ids, args.length, args.num, 1.0, generator),
        f"bare loop ({torch.get_num_threads()} threads)": lambda: bare_loop(model, prompt, args.length, generator),
        "bare loop (1 thread)": one_thread(lambda: bare_loop(model, prompt, args.length, generator)),
        f"sliding window {args.window}, batch 1": one_thread(lambda: sliding_window(
            model, [tokenizer.bos_id, *seed_ids], args.window_length, args.window, generator)),
    }
    for width in args.beams:
        methods[f"beam search, width {width}"] = lambda width=width: beam_search(
            model, tokenizer, seed_ids, args.beam_length, width)
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for round_index in range(args.rounds):
        for name, function in methods.items():
            seconds[name].append(timed(function))
        print(f"round {round_index + 1} of {args.rounds} done", file=sys.stderr)
    return seconds


def tokens_per_run(name: str, args: argparse.Namespace) -> int:
    if name.startswith("sliding window"):
        return args.window_length
    if name.startswith("beam search"):
        return args.beam_length
    return args.num * args.length


def report(seconds: dict[str, list[float]], args: argparse.Namespace) -> str:
    rates = {name: [tokens_per_run(name, args) / value for value in values] for name, values in seconds.items()}
    bare = [max(pair) for pair in zip(*(values for name, values in rates.items() if name.startswith("bare loop")))]
    window = next(values for name, values in rates.items() if name.startswith("sliding window"))
    lines = [
        f"Model {args.model.name}; --num {args.num} --length {args.length}; sliding window over {args.window_length} steps;"
        f" beam search over {args.beam_length} steps; {args.rounds} rounds; torch {torch.__version__},"
        f" {os.cpu_count()} CPUs seen.",
        "",
        "| method | tokens/s, median | tokens/s, best round | vs faster bare loop | vs sliding window |",
        "|---|---:|---:|---:|---:|",
    ]
    startup = statistics.median(seconds.pop("start-up of the CLI alone"))
    rates.pop("start-up of the CLI alone")
    for name, values in rates.items():
        if name.startswith("beam search"):
            continue
        versus_bare = statistics.median(a / b for a, b in zip(values, bare))
        versus_window = statistics.median(a / b for a, b in zip(values, window))
        lines.append(f"| {name} | {statistics.median(values):,.0f} | {max(values):,.0f} | {versus_bare:.2f}x |"
                     f" {versus_window:,.1f}x |")
    lines += ["", f"Start-up of the CLI (Python, torch and musicgen imports): {startup:.2f} s (median).",
              "", "| beam width | ms per step (median) | ms per beam-step | cost per beam vs width 1 |", "|---:|---:|---:|---:|"]
    base = None
    for name, values in seconds.items():
        if not name.startswith("beam search"):
            continue
        width = int(name.rsplit(" ", 1)[1])
        per_step = statistics.median(values) / args.beam_length * 1000
        base = base or per_step
        lines.append(f"| {width} | {per_step:.3f} | {per_step / width:.3f} | {per_step / width / base:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "bach_melody_lstm.pt")
    parser.add_argument("--num", type=int, default=64, help="melodies per batch")
    parser.add_argument("--length", type=int, default=512, help="steps generated per melody")
    parser.add_argument("--window", type=int, default=100, help="tokens the sliding-window method re-reads")
    parser.add_argument("--window-length", type=int, default=256, help="steps the sliding-window method generates")
    parser.add_argument("--beam-length", type=int, default=256, help="steps of each beam search")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4, 16, 64], help="beam widths")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw seconds here")
    args = parser.parse_args()
    seconds = measure(args)
    if args.json is not None:
        args.json.write_text(json.dumps(seconds, indent=2) + "\n", encoding="utf-8")
    print(report(seconds, args))


if __name__ == "__main__":
    main()
