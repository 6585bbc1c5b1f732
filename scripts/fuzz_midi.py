"""Run the mutation fuzz test of tests/test_midi_io.py for longer, through the reader and both tokenizers.

Each case takes one of the edge files that read cleanly, mutates its bytes (bit flips,
truncation, inserted or overwritten bytes, as `tests.test_midi_io.mutate` does), and passes
the result through `musicgen.data.ingest.encode_bytes`, which is what training runs on each
file. A case passes when it gives token ids or one reason string, within the reader's caps.
An exception, an internal error, or invalid notes fail it: the bytes are saved to
--failures-dir and the run exits 1.

    python scripts/fuzz_midi.py --cases 200000
    python scripts/fuzz_midi.py --minutes 30 --seed 7
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from musicgen.data.ingest import INTERNAL_ERROR, encode_bytes  # noqa: E402
from musicgen.midi_io import MidiReadError, ReadLimits, read_score  # noqa: E402
from musicgen.tokenizer import EventTokenizer, MelodyTokenizer  # noqa: E402
from tests.conftest import EDGE_DIR  # noqa: E402
from tests.test_midi_io import FUZZ_SEEDS, assert_notes_valid, mutate  # noqa: E402

REPORT_EVERY_SECONDS = 10.0


def check_case(data: bytes, tokenizers: list, limits: ReadLimits) -> str:
    """Return 'read' or 'rejected' for one mutated file; raise AssertionError when the case fails."""
    try:
        score = read_score(data, limits)
    except MidiReadError as error:
        assert error.reason and "\n" not in error.reason, f"bad reason {error.reason!r}"
        outcome = "rejected"
    else:
        assert_notes_valid(score)
        outcome = "read"
    for tokenizer in tokenizers:
        ids, meta = encode_bytes(data, tokenizer)
        reason = meta.get("reason")
        assert (ids is None) == (reason is not None), f"{tokenizer.name}: ids and reason disagree"
        assert reason is None or not reason.startswith(INTERNAL_ERROR), f"{tokenizer.name}: {reason}"
        if ids is not None:
            assert ids[0] == tokenizer.bos_id, f"{tokenizer.name}: no BOS"
            assert ids[-1] == tokenizer.eos_id, f"{tokenizer.name}: no EOS"
            assert int(ids.max()) < tokenizer.vocab_size
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000, help="mutated files to try (default 100000)")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this many minutes; 0 means no limit")
    parser.add_argument("--seed", type=int, default=20240521, help="random seed of the mutations")
    parser.add_argument("--edge-dir", type=Path, default=EDGE_DIR, help="folder of the edge-case MIDI files")
    parser.add_argument("--failures-dir", type=Path, default=Path("fuzz-failures"), help="where failing inputs are saved")
    parser.add_argument("--no-tokenizers", action="store_true", help="fuzz the reader only")
    arguments = parser.parse_args()

    seeds = [(arguments.edge_dir / name).read_bytes() for name in FUZZ_SEEDS]
    tokenizers = [] if arguments.no_tokenizers else [MelodyTokenizer(), EventTokenizer(program_tokens=True)]
    limits = ReadLimits(max_seconds=5.0)
    rng = random.Random(arguments.seed)
    deadline = time.monotonic() + arguments.minutes * 60 if arguments.minutes > 0 else float("inf")
    outcomes: Counter[str] = Counter()
    slowest, started, last_report = 0.0, time.monotonic(), time.monotonic()
    for case in range(arguments.cases):
        if time.monotonic() > deadline:
            break
        data = mutate(rng.choice(seeds), rng)
        case_started = time.monotonic()
        try:
            outcomes[check_case(data, tokenizers, limits)] += 1
        except Exception as error:  # noqa: BLE001 - every failure is reported with its input
            arguments.failures_dir.mkdir(parents=True, exist_ok=True)
            path = arguments.failures_dir / f"case-{arguments.seed}-{case}.mid"
            path.write_bytes(data)
            print(f"case {case} failed: {type(error).__name__}: {error}; input saved to {path}", file=sys.stderr)
            return 1
        slowest = max(slowest, time.monotonic() - case_started)
        if time.monotonic() - last_report > REPORT_EVERY_SECONDS:
            last_report = time.monotonic()
            print(f"{sum(outcomes.values())} cases: {dict(outcomes)}, slowest {slowest * 1000:.1f} ms", file=sys.stderr)
    total = sum(outcomes.values())
    print(f"{total} cases passed in {time.monotonic() - started:.1f} s: {outcomes['read']} read, "
          f"{outcomes['rejected']} rejected with a reason; slowest case {slowest * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
