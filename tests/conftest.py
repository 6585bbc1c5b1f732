"""Shared paths and fixtures for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

# The tests train and run small recurrent models, whose many tiny steps run fastest on one
# thread. With torch's default of one thread per core, the suite took 21 minutes instead of
# under 2 when another job shared the 2 cores. Subprocesses inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO_ROOT = Path(__file__).resolve().parents[1]
MIDI_DATA = REPO_ROOT / "midi_data"
BACH_MELODIES = MIDI_DATA / "bach_melodies"
# The edge-case MIDI files live in the workspace's shared folder beside the clone;
# MUSICGEN_SHARED points elsewhere when the clone sits somewhere else.
SHARED = Path(os.environ.get("MUSICGEN_SHARED", REPO_ROOT.parent / "shared"))
EDGE_DIR = SHARED / "midi" / "edge"


@pytest.fixture(scope="session", autouse=True)
def token_cache_dir(tmp_path_factory) -> Path:
    """Point musicgen's token cache at a folder of this test session, never at the user's cache."""
    folder = tmp_path_factory.mktemp("token-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("MUSICGEN_CACHE_DIR", str(folder))
    yield folder
    patch.undo()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def edge_dir() -> Path:
    if not EDGE_DIR.is_dir():
        pytest.skip(f"edge MIDI folder not found at {EDGE_DIR}; set MUSICGEN_SHARED")
    return EDGE_DIR


def copy_melodies(destination: Path, count: int) -> Path:
    """Copy the first `count` bundled Bach melodies into `destination` and return it."""
    import shutil

    destination.mkdir(parents=True, exist_ok=True)
    for path in sorted(BACH_MELODIES.glob("*.mid"))[:count]:
        shutil.copy(path, destination / path.name)
    return destination


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """A small LSTM trained for a few seconds on 80 bundled melodies, shared by the tests."""
    from musicgen.cli import cli

    folder = copy_melodies(tmp_path_factory.mktemp("melodies"), 80)
    output = tmp_path_factory.mktemp("model") / "small.pt"
    result = CliRunner().invoke(cli, [
        "train", str(folder), "--output", str(output), "--epochs", "8", "--hidden-size", "64",
        "--layers", "1", "--seq-len", "64", "--no-progress", "--random-seed", "1",
    ])
    assert result.exit_code == 0, result.output
    return output
