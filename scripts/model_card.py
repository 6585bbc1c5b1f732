"""Train a shipped model with its record, and write its model card from `musicgen evaluate`.

Three steps, run from the repository root:

    python scripts/model_card.py train NAME [--threads N] -- TRAIN_ARGS...
        Runs `musicgen train TRAIN_ARGS --output models/NAME.pt` and writes
        models/NAME.train.json: the command, wall time in seconds, and the machine.

    python scripts/model_card.py card NAME MIDI_DIR [-- GENERATE_ARGS...]
        Runs `musicgen evaluate --json` on the checkpoint and MIDI_DIR and writes the result
        to models/NAME.evaluation.json. MIDI_DIR is the training folder, so the held-out files
        are the validation files. Then it generates three examples with `musicgen generate
        --png` into docs/examples/NAME/ and puts the card of NAME into models/README.md
        between its two marker comments, replacing an earlier card of the same model.

    python scripts/model_card.py results
        Writes docs/RESULTS.md: every model that has an evaluation JSON beside its baselines.

Nothing in a card is typed by hand: every figure comes from the checkpoint, the training
record or the evaluation JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = REPO_ROOT / "models"
EXAMPLES = REPO_ROOT / "docs" / "examples"
CARDS = MODELS / "README.md"
EXAMPLE_SEEDS = (1, 2, 3)  # --random-seed of the three example outputs


def describe_machine() -> dict:
    """Return the CPU model, core count, architecture, and the CUDA GPU torch detects (None without one)."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "architecture": platform.machine(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version()}


def train(name: str, train_args: list[str], threads: int) -> int:
    """Run `musicgen train` for models/NAME.pt and write models/NAME.train.json beside it.

    torch runs on `threads` CPU threads (OMP_NUM_THREADS). On 2 cores shared with other jobs,
    one thread trained a 2x256 GRU at about 15,000 tokens/s in every try. Two threads ranged
    from 21,000 down to 600 tokens/s, because their OpenMP threads wait on each other at every
    time step while another process runs on a core (benchmarks/training_threads.py).
    """
    output = MODELS / f"{name}.pt"
    record_path = MODELS / f"{name}.train.json"
    command = ["musicgen", "train", *train_args, "--output", str(output.relative_to(REPO_ROOT)), "--no-progress"]
    earlier_stages = _earlier_stages(train_args, output, record_path)
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.monotonic()
    completed = subprocess.run([sys.executable, "-m", "musicgen", *command[1:]], cwd=REPO_ROOT, env=environment,
                               check=False)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        print(f"musicgen train failed with exit code {completed.returncode}; no record written", file=sys.stderr)
        return completed.returncode
    record = {
        "command": f"OMP_NUM_THREADS={threads} {shlex.join(command)}",
        "seconds": round(seconds, 1),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        # The 1-minute load average before the run: above 0 means other jobs shared the cores.
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if earlier_stages:
        record["earlier_stages"] = earlier_stages
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    # musicgen train also keeps the last epoch's state for resuming; a shipped model needs only the best.
    output.with_suffix(".last.pt").unlink(missing_ok=True)
    print(f"wrote {output} and {record_path} ({seconds / 60:.1f} minutes)")
    return 0


def write_results() -> int:
    """Write docs/RESULTS.md from every models/NAME.evaluation.json and NAME.train.json."""
    names = sorted(path.name[: -len(".evaluation.json")] for path in MODELS.glob("*.evaluation.json"))
    if not names:
        print("no models/*.evaluation.json yet; run the card step first", file=sys.stderr)
        return 1
    reports = {name: json.loads((MODELS / f"{name}.evaluation.json").read_text(encoding="utf-8")) for name in names}
    records = {name: json.loads((MODELS / f"{name}.train.json").read_text(encoding="utf-8")) for name in names}
    lines = RESULTS_HEADER.splitlines() + [
        "| model | data | validation files (notes) | model bits/note | unigram | best Kneser-Ney (n) "
        "| ratio | note accuracy: model / KN | training |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    for name in names:
        report, record = reports[name], records[name]
        metrics, order = report["metrics"], report["best_ngram_order"]
        best = metrics[f"kneser-ney-{order}"]
        lines.append(
            f"| `{name}.pt` | `{report['midi_dir']}` | {report['held_out']['files']} ({report['held_out']['notes']:,}) "
            f"| {metrics['model']['bits_per_note']:.3f} | {metrics['unigram']['bits_per_note']:.3f} "
            f"| {best['bits_per_note']:.3f} ({order}) | **{report['ratio_to_best_ngram']:.3f}** "
            f"| {metrics['model']['note_accuracy']:.3f} / {best['note_accuracy']:.3f} | {total_seconds(record) / 60:.1f} min |")

    lines += ["", "Kneser-Ney bits per note on the same validation files, by order:", ""]
    orders = sorted({int(key.rsplit("-", 1)[1]) for r in reports.values() for key in r["metrics"] if key.startswith("kneser")})
    lines += ["| model | " + " | ".join(f"n={order}" for order in orders) + " |",
              "| --- | " + " | ".join("---:" for _ in orders) + " |"]
    for name in names:
        metrics = reports[name]["metrics"]
        lines.append(f"| `{name}.pt` | " + " | ".join(f"{metrics[f'kneser-ney-{order}']['bits_per_note']:.3f}"
                                                       for order in orders) + " |")

    lines += stats_lines(names, reports)
    lines += ["", "## Commands", "", "Every figure above comes from these commands, run from the repository root:", ""]
    for name in names:
        report = reports[name]
        card_command = f"python scripts/model_card.py card {name} {report['midi_dir']}"
        examples_record = EXAMPLES / name / "examples.json"
        if examples_record.is_file():
            example_args = json.loads(examples_record.read_text(encoding="utf-8"))["generate_args"]
            card_command += " -- " + shlex.join(example_args)
        stages = [stage["command"] for stage in [*records[name].get("earlier_stages", []), records[name]]]
        lines += [f"`{name}.pt`:", "", "```bash", *stages,
                  f"musicgen evaluate --model models/{name}.pt {report['midi_dir']} --json",
                  f"{card_command}   # card, examples, evaluation JSON",
                  f"musicgen stats {report['midi_dir']} docs/examples/{name} --json",
                  "```", ""]
    lines += ["Then `python scripts/model_card.py results` writes this page.", ""]
    (REPO_ROOT / "docs" / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {REPO_ROOT / 'docs' / 'RESULTS.md'}")
    return 0


def stats_lines(names: list[str], reports: dict[str, dict]) -> list[str]:
    """Return a table comparing each model's three examples with its training folder (musicgen stats)."""
    lines = ["", "## Examples against the training music", "",
             "`musicgen stats DATA docs/examples/NAME` on the whole data folder (A) and the three examples of each "
             "model (B, seed bars included). Three 10-bar melodies are a small sample, so these figures show "
             "gross failures only, such as one repeated note or pitches outside the style.", "",
             "| model | pitch classes per file A / B | pitch-class entropy A / B | scale consistency A / B "
             "| longest repeat A / B | overlap: pitch class | interval | note length |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        midi_dir = reports[name]["midi_dir"]
        stats = json.loads(run_musicgen("stats", midi_dir, str(Path("docs") / "examples" / name), "--json", "--no-progress"))
        first, second = stats["sets"]
        overlap = stats["overlap"]
        lines.append(
            f"| `{name}.pt` | {first['mean_file_pitch_classes']:.1f} / {second['mean_file_pitch_classes']:.1f} "
            f"| {first['pitch_class_entropy']:.2f} / {second['pitch_class_entropy']:.2f} "
            f"| {first['scale_consistency']:.3f} / {second['scale_consistency']:.3f} "
            f"| {first['longest_repeat']} / {second['longest_repeat']} | {overlap['pitch_class_histogram']:.3f} "
            f"| {overlap['interval_histogram']:.3f} | {overlap['duration_histogram']:.3f} |")
    return lines


RESULTS_HEADER = """# Results: shipped models against n-gram baselines

Written by `python scripts/model_card.py results` from `models/*.evaluation.json` (the output
of `musicgen evaluate --json`) and `models/*.train.json` (the record of each training run).
Each model is scored on its own validation files, the files its checkpoint held out, split
by file. The baselines are fitted on the same model's training files. Bits per note is the
negative log-likelihood of whole files in bits divided by their notes; the ratio is the
model's bits per note over the best Kneser-Ney order's, and the goal is at most 0.75. The
best order is chosen on the validation files themselves, which favours the baseline. Note
accuracy counts, at each note onset, whether the true pitch is ranked first. Training ran on
2 CPU cores (x86_64) shared with other jobs, within the minutes shown; models/README.md
gives each model's machine record and example outputs.

"""


def _earlier_stages(train_args: list[str], output: Path, record_path: Path) -> list[dict]:
    """Return the records of the runs before this one when it fine-tunes models/NAME.pt itself (--init-from).

    A model trained in stages (say with transposition augmentation, then without) keeps
    every stage's command in its record, so the card can list them in order.
    """
    if "--init-from" not in train_args or not record_path.is_file():
        return []
    init_from = train_args[train_args.index("--init-from") + 1]
    if (REPO_ROOT / init_from).resolve() != output.resolve():
        return []
    previous = json.loads(record_path.read_text(encoding="utf-8"))
    stages = previous.pop("earlier_stages", [])
    previous.pop("machine", None)
    return [*stages, previous]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="step", required=True)
    train_parser = commands.add_parser("train", help="train models/NAME.pt and record the run")
    train_parser.add_argument("name")
    train_parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch [default: 1]")
    card_parser = commands.add_parser("card", help="evaluate models/NAME.pt and write its card")
    card_parser.add_argument("name")
    card_parser.add_argument("midi_dir", type=Path)
    commands.add_parser("results", help="write docs/RESULTS.md from the evaluation JSON files")
    parser.epilog = ("Arguments after -- go to musicgen train (train step) or musicgen generate for the examples "
                     "(card step; default: --seed with the first 2 bars of the first validation file).")
    # Arguments after the first -- go to musicgen unchanged, so argparse does not parse them.
    argv = list(sys.argv[1:] if argv is None else argv)
    passed_on = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.step == "results":
        return write_results()
    if args.step == "train":
        return train(args.name, passed_on, args.threads)
    return write_card(args.name, args.midi_dir, passed_on)


def run_musicgen(*args: str) -> str:
    """Run a musicgen command from the repository root and return its standard output."""
    completed = subprocess.run([sys.executable, "-m", "musicgen", *args], cwd=REPO_ROOT, capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"musicgen {' '.join(args)} failed:\n{completed.stderr.strip()}")
    return completed.stdout


def write_card(name: str, midi_dir: Path, example_args: list[str]) -> int:
    """Evaluate models/NAME.pt, write its examples, and put its card into models/README.md."""
    import torch

    checkpoint = MODELS / f"{name}.pt"
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    record = json.loads((MODELS / f"{name}.train.json").read_text(encoding="utf-8"))
    model_arg, data_arg = str(checkpoint.relative_to(REPO_ROOT)), str(midi_dir)
    report = json.loads(run_musicgen("evaluate", "--model", model_arg, data_arg, "--json", "--no-progress"))
    (MODELS / f"{name}.evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not example_args:
        example_args = default_example_args(Path(data_arg), payload["data"]["validation_names"])
    examples = write_examples(name, model_arg, example_args)
    card = format_card(name, payload, record, report, examples, example_args, checkpoint.stat().st_size)
    replace_card(name, card)
    print(f"wrote the card of {name} into {CARDS}; ratio to the best n-gram {report['ratio_to_best_ngram']:.3f}")
    return 0


def default_example_args(midi_dir: Path, validation_names: list[str]) -> list[str]:
    """Seed the examples with the first 2 bars of a held-out file, so the seed is music the model never saw.

    The file is the first validation file with a single time signature: `musicgen generate`
    takes a MIDI seed's meter and bar length from its first time signature, which in a file
    with a pickup bar is the pickup's (such as 1/4). Without such a file there is no seed.
    """
    from musicgen.midi_io import read_score

    for name in sorted(validation_names):
        if len(read_score(REPO_ROOT / midi_dir / name).time_signatures) <= 1:
            return ["--seed", str(midi_dir / name), "--seed-bars", "2"]
    return []


def write_examples(name: str, model_arg: str, example_args: list[str]) -> list[Path]:
    """Generate three examples with their piano rolls into docs/examples/NAME/, replacing earlier ones."""
    folder = EXAMPLES / name
    if folder.exists():
        for old in folder.iterdir():
            old.unlink()
    midi_files = []
    for random_seed in EXAMPLE_SEEDS:
        output = run_musicgen("generate", "--model", model_arg, *example_args, "--bars", "8", "--random-seed",
                              str(random_seed), "--output-dir", str(folder.relative_to(REPO_ROOT)), "--png")
        midi_files += [REPO_ROOT / line for line in output.split() if line.endswith(".mid")]
    # The arguments, so that docs/RESULTS.md can print the card command that made these files.
    record = {"generate_args": example_args, "random_seeds": list(EXAMPLE_SEEDS)}
    (folder / "examples.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return midi_files


def format_card(name: str, payload: dict, record: dict, report: dict, examples: list[Path],
                example_args: list[str], size_bytes: int) -> str:
    """Return the markdown card of one model."""
    config, train_config, data = payload["model_config"], payload["train_config"], payload["data"]
    tokenizer = payload["tokenizer"]["config"]
    vocabulary = len(payload["tokenizer"]["vocabulary"])
    parameters = sum(tensor.numel() for tensor in payload["model_state"].values())
    mode = config.get("mode", "many-to-many")
    conditions = config.get("conditions") or []
    held, trained = report["held_out"], report["training"]
    machine = record["machine"]
    epochs_run = _epochs_run(MODELS / f"{name}.metrics.csv")
    lines = [
        f"## {name}.pt",
        "",
        f"A {mode} {config['cell'].upper()}" + (f" conditioned on {', '.join(conditions)}," if conditions else "")
        + f" trained on `{data['folder']}/`.",
        "",
        "| | |",
        "| --- | --- |",
        f"| data | `{data['folder']}/`: {held['files'] + trained['files']} files, "
        f"{held['tokens'] + trained['tokens']:,} predicted tokens; split by file with random seed "
        f"{train_config['random_seed']} into {trained['files']} training and {held['files']} validation files |",
        f"| tokenizer | melody grid, {tokenizer['steps_per_quarter']} steps per quarter note, pitches "
        f"{tokenizer['pitch_low']}..{tokenizer['pitch_high']} ({vocabulary} tokens) |",
        f"| model | {config['cell'].upper()}, {config['layers']} layers of {config['hidden_size']} units, embedding "
        f"{config['embedding_size']}, dropout {config['dropout']:g}; {parameters:,} parameters; "
        f"checkpoint {size_bytes / 1e6:.1f} MB |",
        f"| training | Adam, learning rate {train_config['lr']:g} ({train_config.get('lr_schedule', 'constant')}), "
        f"batch {train_config['batch_size']} windows of {train_config['seq_len']} steps, gradient-norm clip "
        f"{train_config['clip_norm']:g}, teacher forcing; other settings in the command below |",
        f"| stopped | epoch {payload['epoch']} kept (best by validation loss) of {epochs_run} run; "
        f"limit {train_config['max_minutes']:g} minutes (`--max-minutes`) |",
        f"| time and machine | {total_seconds(record) / 60:.1f} minutes wall time for "
        f"{'the whole command' if 'earlier_stages' not in record else 'all its stages together'} on "
        f"{machine['cores']} CPU cores ({machine['cpu']}, {machine['architecture']}), "
        f"{'GPU ' + machine['gpu'] if machine['gpu'] else 'no GPU'}, torch {machine['torch']}; load average "
        f"{record['load_average_before']:.1f} before and {record['load_average_after']:.1f} after "
        "(the cores were shared with other jobs when it is above 0) |",
        "",
        *_command_lines(record),
        "",
        f"Metrics on the {held['files']} validation files ({held['notes']:,} notes), from "
        f"`musicgen evaluate --model models/{name}.pt {data['folder']} --json` "
        f"(saved as `models/{name}.evaluation.json`); the baselines are fitted on the {trained['files']} "
        "training files:",
        "",
        "| | NLL/token (nats) | perplexity | bits/note | note accuracy |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    best = f"kneser-ney-{report['best_ngram_order']}"
    labels = {"model": f"**{name}**", "unigram": "unigram (add-one)",
              best: f"Kneser-Ney {report['best_ngram_order']}-gram (best of 2..8)"}
    for key, label in labels.items():
        row = report["metrics"][key]
        lines.append(f"| {label} | {row['nll_per_token']:.4f} | {row['perplexity']:.3f} | {row['bits_per_note']:.3f} "
                     f"| {row['note_accuracy']:.3f} |")
    lines += [
        "",
        f"Bits per note, model / best Kneser-Ney: **{report['ratio_to_best_ngram']:.3f}** (goal: at most 0.75).",
    ]
    if report.get("conditioned_on"):
        lines += ["", f"The model is given each validation file's own {', '.join(report['conditioned_on'])}, "
                      "so its bits per note are conditional on that information; the n-grams get no such hint."]
    loss_curve = MODELS / f"{name}.loss.png"
    if loss_curve.is_file():
        lines += ["", f"Training and validation loss by step (`{loss_curve.name}`, written by `musicgen train`):", "",
                  f"![loss curve of {name}]({loss_curve.name})"]
    lines += _example_lines(name, examples, example_args)
    return "\n".join(lines)


def total_seconds(record: dict) -> float:
    """Return the wall time of a training record, its earlier stages included."""
    return record["seconds"] + sum(stage["seconds"] for stage in record.get("earlier_stages", []))


def _command_lines(record: dict) -> list[str]:
    """Return the card lines with the training command, or the commands of every stage in order."""
    stages = [*record.get("earlier_stages", []), record]
    if len(stages) == 1:
        return ["Command (from the repository root):", "", "```bash", record["command"], "```"]
    lines = [f"Commands (from the repository root), run in this order; each stage after the first starts from "
             f"the weights the one before it wrote (`--init-from`), and the table above describes the last:", ""]
    lines += ["```bash"]
    for number, stage in enumerate(stages, start=1):
        lines += [f"# stage {number}: {stage['seconds'] / 60:.1f} minutes", stage["command"]]
    lines += ["```"]
    return lines


def _example_lines(name: str, examples: list[Path], example_args: list[str]) -> list[str]:
    arguments = shlex.join(example_args)
    lines = [
        "",
        f"Examples in `docs/examples/{name}/`, from `musicgen generate --model models/{name}.pt {arguments} "
        f"--bars 8 --random-seed N --png` with N = {', '.join(map(str, EXAMPLE_SEEDS))}:",
        "",
    ]
    for path in examples:
        relative = path.relative_to(REPO_ROOT)
        lines += [f"- [{path.name}](../{relative})", "", f"  ![{path.stem} piano roll](../{relative.with_suffix('.png')})", ""]
    return lines[:-1]


def _epochs_run(metrics_csv: Path) -> int:
    """Count the epochs with a validation result in the run's metrics CSV (other rows log training loss)."""
    import csv

    if not metrics_csv.is_file():
        return 0
    with open(metrics_csv, newline="", encoding="utf-8") as stream:
        return len({row["epoch"] for row in csv.DictReader(stream) if row.get("val_loss")})


def replace_card(name: str, card: str) -> None:
    """Put `card` between the markers of NAME in models/README.md, keeping the cards sorted by name.

    Text after the last card is dropped, so everything but the cards goes above them.
    """
    import re

    text = CARDS.read_text(encoding="utf-8") if CARDS.exists() else "# Trained models\n"
    pattern = re.compile(r"<!-- card (\S+): written by scripts/model_card.py -->\n.*?<!-- end of card \1 -->", re.DOTALL)
    blocks = {match.group(1): match.group(0) for match in pattern.finditer(text)}
    blocks[name] = f"<!-- card {name}: written by scripts/model_card.py -->\n{card}\n<!-- end of card {name} -->"
    first = pattern.search(text)
    head = text[: first.start()] if first else text
    cards = "\n\n".join(blocks[key] for key in sorted(blocks))
    CARDS.write_text(head.rstrip("\n") + "\n\n" + cards + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
