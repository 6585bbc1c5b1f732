"""Data-parallel training with torchrun: 2 CPU processes (gloo) match one process on the same global batch."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from musicgen.checkpoint import read_checkpoint
from tests.conftest import REPO_ROOT, copy_melodies

ARGS = ["--epochs", "2", "--hidden-size", "32", "--layers", "1", "--embedding-size", "16", "--seq-len", "32",
        "--batch-size", "15", "--dropout", "0", "--no-progress", "--no-cache", "--save-every", "5"]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(command: list[str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPO_ROOT, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train the same model with torchrun on 2 processes and with a single process."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    folder = copy_melodies(tmp_path_factory.mktemp("ddp_melodies"), 30)
    two, one = tmp_path_factory.mktemp("two"), tmp_path_factory.mktemp("one")
    distributed = run([torchrun, "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                       "--master_port", str(free_loopback_port()), "-m", "musicgen", "train", str(folder),
                       "--output", str(two / "m.pt"), *ARGS])
    assert distributed.returncode == 0, distributed.stderr[-3000:]
    single = run([sys.executable, "-m", "musicgen", "train", str(folder), "--output", str(one / "m.pt"), *ARGS])
    assert single.returncode == 0, single.stderr[-3000:]
    return two, one, distributed


def test_ddp_writes_one_set_of_run_files(runs):
    two, _, distributed = runs
    assert sorted(path.name for path in two.iterdir()) == [
        "m.config.toml", "m.last.pt", "m.loss.png", "m.metrics.csv", "m.pt",
    ]
    assert "process group of 2 ranks (gloo backend)" in distributed.stderr
    # Only rank 0 logs and prints, so each line appears once.
    assert distributed.stderr.count("epoch 2 | step") == 1
    assert distributed.stdout.count("wrote ") == 1
    assert read_checkpoint(two / "m.last.pt", verify=True)["training_state"]["world_size"] == 2


def test_ddp_matches_single_process(runs):
    two, one, _ = runs
    ddp, single = read_checkpoint(two / "m.last.pt", verify=True), read_checkpoint(one / "m.last.pt", verify=True)
    assert ddp["step"] == single["step"]
    # The same global batch of 15 windows (8 + 7 per rank): equal up to the order of float sums.
    assert ddp["metrics"]["train_loss"] == pytest.approx(single["metrics"]["train_loss"], rel=1e-4)
    assert ddp["metrics"]["val_loss"] == pytest.approx(single["metrics"]["val_loss"], rel=1e-4)
    for name, weight in single["model_state"].items():
        assert torch.allclose(ddp["model_state"][name], weight, atol=1e-5), name
