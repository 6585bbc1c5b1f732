"""Resume and fine-tuning: killed runs continue from their step, resumed runs equal uninterrupted ones, bad checkpoints stop with one line."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from musicgen.checkpoint import CheckpointError, read_checkpoint
from musicgen.cli import cli
from musicgen.config import ModelConfig, TrainConfig
from musicgen.data.corpus import encode_folder
from musicgen.tokenizer import MelodyTokenizer
from musicgen.training import train
from tests.conftest import REPO_ROOT, copy_melodies
from tests.test_cli import one_line_error

TINY = ["--hidden-size", "32", "--layers", "1", "--embedding-size", "16", "--seq-len", "32", "--no-progress", "--no-cache"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return copy_melodies(tmp_path_factory.mktemp("resume_melodies"), 40)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = copy_melodies(tmp_path_factory.mktemp("resume_corpus"), 20)
    return encode_folder(folder, MelodyTokenizer(), show_progress=False)


@pytest.fixture(scope="module")
def finished_run(folder, tmp_path_factory):
    """A finished 1-epoch CLI run; returns its best checkpoint path."""
    from click.testing import CliRunner

    output = tmp_path_factory.mktemp("finished") / "m.pt"
    result = CliRunner().invoke(cli, ["train", str(folder), "--output", str(output), "--epochs", "1", *TINY])
    assert result.exit_code == 0, result.output
    return output


def musicgen_process(*args: str) -> subprocess.Popen:
    # One thread per process: two busy OpenMP threads on a shared 2-core machine slow tiny models down.
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "musicgen", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=environment, cwd=REPO_ROOT)


def wait_for_mid_epoch_checkpoint(process: subprocess.Popen, last, timeout: float = 120.0) -> None:
    """Poll until the last checkpoint of a running process was written in the middle of an epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before a mid-epoch checkpoint appeared"
        if last.exists():
            try:
                if read_checkpoint(last)["training_state"]["run"]["batch"] > 0:
                    return
            except CheckpointError:
                pass  # read while being replaced on a slow file system; try again
        time.sleep(0.02)
    pytest.fail("no mid-epoch checkpoint within the time limit")


def saved_run_state(last) -> dict:
    return read_checkpoint(last, verify=True)["training_state"]["run"]


def test_sigkill_mid_epoch_then_resume(folder, tmp_path):
    output, last = tmp_path / "m.pt", tmp_path / "m.last.pt"
    # 20 epochs keep the run going long after the first checkpoint; the resumed run stops after 2.
    process = musicgen_process("train", str(folder), "--output", str(output), "--epochs", "20", "--batch-size", "16",
                               "--save-every", "3", "--log-every", "2", *TINY)
    try:
        wait_for_mid_epoch_checkpoint(process, last)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    saved = saved_run_state(last)

    resumed = musicgen_process("train", "--resume", str(last), "--epochs", "2", "--no-progress", "--no-cache")
    _, log = resumed.communicate(timeout=300)

    assert resumed.returncode == 0, log
    batches_per_epoch = int(re.search(r"(\d+) batches per epoch", log).group(1))
    assert saved["step"] < 2 * batches_per_epoch
    assert f"resuming at epoch {saved['epoch']}, batch {saved['batch']} of {batches_per_epoch}, step {saved['step']}" in log
    final = read_checkpoint(last, verify=True)
    assert final["training_state"]["run"]["step"] == 2 * batches_per_epoch
    assert final["training_state"]["run"]["epoch"] == 3  # the epoch after the last one
    steps = [int(row["step"]) for row in csv.DictReader(open(tmp_path / "m.metrics.csv", encoding="utf-8"))]
    assert steps == sorted(steps)
    assert steps[-1] == 2 * batches_per_epoch
    assert any(step > saved["step"] for step in steps)


def test_sigterm_stops_cleanly_with_last_checkpoint(folder, tmp_path):
    output, last = tmp_path / "m.pt", tmp_path / "m.last.pt"
    process = musicgen_process("train", str(folder), "--output", str(output), "--epochs", "20", "--batch-size", "16",
                               "--save-every", "3", *TINY)
    wait_for_mid_epoch_checkpoint(process, last)
    process.send_signal(signal.SIGTERM)
    stdout, log = process.communicate(timeout=120)

    assert process.returncode == 0, log
    assert "SIGTERM received" in log
    assert re.search(r"stopped on request in epoch \d+ at step \d+", log)
    assert "continue with: musicgen train --resume" in stdout
    state = saved_run_state(last)
    assert state["step"] > 0
    assert output.is_file()


def tiny_config(**changes) -> TrainConfig:
    settings = dict(seq_len=32, batch_size=16, save_every=4, lr_schedule="plateau", teacher_forcing_ratio=0.7)
    return TrainConfig(**{**settings, **changes})


def tiny_model() -> ModelConfig:
    # Dropout and scheduled sampling draw random numbers, so equality needs the random states restored.
    return ModelConfig(MelodyTokenizer().vocab_size, "lstm", embedding_size=16, hidden_size=32, layers=2, dropout=0.3)


def final_weights(last) -> dict[str, torch.Tensor]:
    return read_checkpoint(last, verify=True)["model_state"]


@pytest.mark.parametrize("stop", ["after_epoch", "mid_epoch"])
def test_resume_equals_uninterrupted_run(corpus, tmp_path, stop):
    tokenizer = MelodyTokenizer()
    train(corpus, tokenizer, tiny_model(), tiny_config(epochs=2), tmp_path / "whole.pt", show_progress=False)
    first = tiny_config(epochs=1) if stop == "after_epoch" else tiny_config(epochs=2, max_steps=14)
    train(corpus, tokenizer, tiny_model(), first, tmp_path / "parts.pt", show_progress=False)
    payload = read_checkpoint(tmp_path / "parts.last.pt", verify=True)
    if stop == "mid_epoch":
        assert payload["training_state"]["run"]["batch"] > 0

    result = train(corpus, tokenizer, tiny_model(), tiny_config(epochs=2), tmp_path / "parts.pt", show_progress=False,
                   resume=payload)

    assert result.resumed_from_step == payload["training_state"]["run"]["step"]
    whole, parts = final_weights(tmp_path / "whole.last.pt"), final_weights(tmp_path / "parts.last.pt")
    assert whole.keys() == parts.keys()
    for name in whole:
        assert torch.equal(whole[name], parts[name]), name


def garble(path, destination) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0x5A
    destination.write_bytes(bytes(data))


def test_garbled_checkpoint_gives_clear_error(finished_run, tmp_path):
    last = finished_run.with_name("m.last.pt")
    garbled = tmp_path / "garbled.last.pt"
    garble(last, garbled)

    with pytest.raises(CheckpointError, match="garbled.last.pt is damaged: its contents do not match the SHA-256 digest"):
        read_checkpoint(garbled, verify=True)


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
@pytest.mark.parametrize("option", ["--resume", "--init-from"])
def test_damaged_checkpoint_never_replaces_good_one(runner, folder, finished_run, tmp_path, damage, option):
    run_folder = finished_run.parent
    before = {path.name: path.read_bytes() for path in run_folder.iterdir()}
    damaged = tmp_path / "damaged.last.pt"
    if damage == "truncated":
        damaged.write_bytes(finished_run.with_name("m.last.pt").read_bytes()[:4000])
    else:
        garble(finished_run.with_name("m.last.pt"), damaged)
    output = ["--output", str(finished_run)] if option == "--init-from" else []

    line = one_line_error(runner.invoke(cli, ["train", str(folder), option, str(damaged), *output, "--no-progress"]))

    expected = "is not a musicgen checkpoint, or is truncated or damaged" if damage == "truncated" else "is damaged"
    assert f"damaged.last.pt {expected}" in line
    assert {path.name: path.read_bytes() for path in run_folder.iterdir()} == before


def test_resume_from_best_checkpoint_is_rejected(runner, finished_run):
    line = one_line_error(runner.invoke(cli, ["train", "--resume", str(finished_run)]))
    assert "contains no training state (it is a best checkpoint)" in line


def test_resume_rejects_changed_model_setting(runner, finished_run):
    last = finished_run.with_name("m.last.pt")
    line = one_line_error(runner.invoke(cli, ["train", "--resume", str(last), "--hidden-size", "64"]))
    assert "--hidden-size 64 differs from the resumed run's 32" in line
    assert "--init-from" in line


def test_resume_of_finished_run_trains_nothing(runner, finished_run, caplog):
    last = finished_run.with_name("m.last.pt")
    before = last.read_bytes()
    result = runner.invoke(cli, ["train", "--resume", str(last)])
    assert result.exit_code == 0, result.output
    assert "the run already finished its 1 epochs" in caplog.text
    assert last.read_bytes() == before


def test_init_from_fine_tunes_on_new_folder(runner, finished_run, tmp_path, caplog):
    other = copy_melodies(tmp_path / "other", 60)
    for path in sorted(other.iterdir())[:40]:
        path.unlink()  # keep the 20 melodies the first run never saw
    output = tmp_path / "tuned.pt"

    result = runner.invoke(cli, ["train", str(other), "--init-from", str(finished_run), "--output", str(output),
                                 "--epochs", "1", "--seq-len", "32", "--no-progress", "--no-cache"])

    assert result.exit_code == 0, result.output
    assert "hidden_size = 32  (--init-from m.pt)" in caplog.text
    tuned = read_checkpoint(output, verify=True)
    assert tuned["model_config"] == read_checkpoint(finished_run)["model_config"]
    assert tuned["settings"]["init_from"] == str(finished_run)


@pytest.mark.parametrize(("args", "expected"), [
    (["--hidden-size", "64"], "hidden_size = 64 (from command line) does not match 32 in the --init-from checkpoint"),
    (["--pitch-low", "40"], "pitch_low = 40 (from command line) does not match 36 in the --init-from checkpoint"),
    (["--tokenizer", "event"], "tokenizer = 'event' (from command line) does not match 'melody'"),
])
def test_init_from_mismatch_names_setting(runner, folder, finished_run, tmp_path, args, expected):
    line = one_line_error(runner.invoke(cli, ["train", str(folder), "--init-from", str(finished_run),
                                              "--output", str(tmp_path / "x.pt"), *args]))
    assert expected in line
    assert not (tmp_path / "x.pt").exists()


def test_new_run_keeps_last_checkpoint_of_killed_run(runner, folder, finished_run, tmp_path):
    last = tmp_path / "m.last.pt"
    last.write_bytes(finished_run.with_name("m.last.pt").read_bytes())  # a run killed before its first best checkpoint
    before = last.read_bytes()

    line = one_line_error(runner.invoke(cli, ["train", str(folder), "--output", str(tmp_path / "m.pt"), *TINY]))

    assert f"{last} exists from an earlier run; continue it with --resume {last}" in line
    assert last.read_bytes() == before


def test_max_minutes_stops_cleanly_with_last_checkpoint(runner, folder, tmp_path, caplog):
    output = tmp_path / "m.pt"
    # 1e-7 minutes (6 microseconds) runs out during the first step, whatever the machine.
    result = runner.invoke(cli, ["train", str(folder), "--output", str(output), "--max-minutes", "1e-7", *TINY])

    assert result.exit_code == 0, result.output
    assert "stopped after 1e-07 minutes (--max-minutes) in epoch 1 at step 1" in caplog.text
    assert f"continue with: musicgen train --resume {tmp_path / 'm.last.pt'}" in result.stdout
    state = read_checkpoint(tmp_path / "m.last.pt", verify=True)["training_state"]["run"]
    assert (state["epoch"], state["batch"], state["step"]) == (1, 1, 1)
    assert read_checkpoint(output, verify=True)["kind"] == "best"


def test_resume_with_other_folder_is_rejected(runner, finished_run, tmp_path):
    other = copy_melodies(tmp_path / "other", 12)
    last = finished_run.with_name("m.last.pt")
    before = last.read_bytes()

    line = one_line_error(runner.invoke(cli, ["train", str(other), "--resume", str(last)]))

    assert "the training windows differ from those of the resumed run" in line
    assert last.read_bytes() == before
