"""Presets, config files and their order against command-line options; bad values name the setting and its range."""

from __future__ import annotations

import re

import pytest

from musicgen.checkpoint import read_checkpoint
from musicgen.cli import cli
from musicgen.commands.train import train as train_command
from musicgen.config import ConfigError, ModelConfig, TrainConfig
from musicgen.plotting import read_metrics
from musicgen.settings import PRESETS, read_config_file
from tests.conftest import copy_melodies
from tests.test_cli import one_line_error

MODEL_FIELDS = ("cell", "embedding_size", "hidden_size", "layers", "dropout")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return copy_melodies(tmp_path_factory.mktemp("settings_melodies"), 12)


def train_args(folder, output, *args):
    return ["train", str(folder), "--output", str(output), "--no-progress", "--no-cache", *args]


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_values_are_valid(name):
    values = PRESETS[name]
    ModelConfig(66, **{key: values[key] for key in MODEL_FIELDS})
    TrainConfig(**{key: value for key, value in values.items() if key not in MODEL_FIELDS})
    # Every preset value also passes the command-line option's own type and range.
    params = {param.name: param for param in train_command.params}
    for key, value in values.items():
        assert params[key].type_cast_value(None, value) == value, key


def test_presets_grow_from_small_to_large():
    sizes = [(PRESETS[name]["hidden_size"], PRESETS[name]["layers"]) for name in ("small", "base", "large")]
    assert sizes == [(128, 1), (256, 2), (512, 3)]


def test_command_line_overrides_config_file_overrides_preset(runner, folder, tmp_path, caplog):
    config = tmp_path / "run.toml"
    config.write_text('preset = "small"\nhidden-size = 24\nlayers = 2\nepochs = 1\nseq_len = 32\n', encoding="utf-8")
    output = tmp_path / "m.pt"

    result = runner.invoke(cli, train_args(folder, output, "--config", str(config), "--layers", "1"))

    assert result.exit_code == 0, result.output
    settings = read_checkpoint(output)["settings"]
    assert settings["hidden_size"] == 24  # config file over preset
    assert settings["layers"] == 1  # command line over config file
    assert settings["embedding_size"] == PRESETS["small"]["embedding_size"]  # preset over default
    assert settings["lr"] == PRESETS["small"]["lr"]
    assert f"hidden_size = 24  (config file {config})" in caplog.text
    assert "layers = 1  (command line)" in caplog.text
    assert "embedding_size = 32  (preset small)" in caplog.text
    assert "clip_norm = 1.0  (default)" in caplog.text


def test_yaml_config_and_saved_config_rerun(runner, folder, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 1\nhidden_size: 16\nlayers: 1\nseq_len: 32\nlr_schedule: cosine\nwarmup_steps: 2\n",
                      encoding="utf-8")
    first, second = tmp_path / "first" / "m.pt", tmp_path / "second" / "m.pt"
    assert runner.invoke(cli, train_args(folder, first, "--config", str(config))).exit_code == 0

    saved = first.with_suffix(".config.toml")
    assert "output" not in read_config_file(saved)
    result = runner.invoke(cli, ["train", "--config", str(saved), "--output", str(second), "--no-progress"])

    assert result.exit_code == 0, result.output
    first_settings, second_settings = read_checkpoint(first)["settings"], read_checkpoint(second)["settings"]
    assert first_settings["lr_schedule"] == "cosine"
    assert first_settings["warmup_steps"] == 2
    assert {**first_settings, "output": None} == {**second_settings, "output": None}
    # The run folder contains the CSV with the metrics columns, and its picture.
    row = read_metrics(first.with_suffix(".metrics.csv"))[-1]
    for column in ("step", "epoch", "train_loss", "val_loss", "perplexity", "bits_per_note", "note_accuracy", "lr",
                   "tokens_per_second"):
        assert row[column] != "", column
    assert first.with_suffix(".loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("content", "expected"), [
    ("epochs = 0\n", "invalid epochs = 0: 0 is not in the range 1<=x<=100000"),
    ("teacher_forcing_ratio = 1.5\n", "invalid teacher_forcing_ratio = 1.5: 1.5 is not in the range 0<=x<=1"),
    ('lr_schedule = "linear"\n', "invalid lr_schedule = 'linear': 'linear' is not one of 'constant', 'cosine', 'plateau'"),
    ('preset = "huge"\n', "invalid preset = 'huge': 'huge' is not one of 'small', 'base', 'large'"),
    ("hidden_size = 0\n", "invalid hidden_size = 0: 0 is not in the range 1<=x<=8192"),
    ("bogus = 1\n", "unknown setting `bogus`; the settings are: batch_size,"),
    ("resume = 'x.pt'\n", "`resume` cannot be set in a config file"),
    ("[model]\nlayers = 2\n", "setting `model` is a table"),
    ("epochs = [1\n", "invalid TOML"),
    ('teacher_forcing_schedule = "linear"\nteacher_forcing_ratio = 0.2\n',
     "teacher_forcing_final (0.5) must not exceed teacher_forcing_ratio (0.2)"),
])
def test_bad_config_value_names_key_and_range(runner, folder, tmp_path, content, expected):
    config = tmp_path / "bad.toml"
    config.write_text(content, encoding="utf-8")
    line = one_line_error(runner.invoke(cli, train_args(folder, tmp_path / "m.pt", "--config", str(config))))
    assert expected in line
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(("name", "expected"), [
    ("missing.toml", "config file not found"),
    ("settings.json", "unknown config file type '.json'; use .toml, .yaml, .yml"),
])
def test_config_file_path_errors(runner, folder, tmp_path, name, expected):
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text("{}", encoding="utf-8")
    assert expected in one_line_error(runner.invoke(cli, train_args(folder, tmp_path / "m.pt", "--config", str(path))))


def test_bad_yaml_is_one_line(runner, folder, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [1\n", encoding="utf-8")
    assert "invalid YAML" in one_line_error(runner.invoke(cli, train_args(folder, tmp_path / "m.pt", "--config", str(path))))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("lr_schedule", "step", "lr_schedule must be one of constant, cosine, plateau (received 'step')"),
    ("warmup_steps", -1, "warmup_steps must be in 0..10000000 (received -1)"),
    ("plateau_factor", 1.0, "plateau_factor must be in (0, 1) (received 1.0)"),
    ("teacher_forcing_schedule", "cubic", "teacher_forcing_schedule must be one of constant, linear, inverse-sigmoid"),
    ("precision", "int8", "precision must be one of auto, fp32, bf16, fp16 (received 'int8')"),
    ("weight_decay", 2.0, "weight_decay must be in 0.0..1.0 (received 2.0)"),
])
def test_train_config_names_field_and_range(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(**{field: value})


def test_fp16_on_cpu_is_rejected(runner, folder, tmp_path):
    line = one_line_error(runner.invoke(cli, train_args(folder, tmp_path / "m.pt", "--device", "cpu", "--precision", "fp16")))
    assert "precision fp16 needs a CUDA device; use --precision bf16 or fp32 on the CPU" in line


def test_resume_refuses_config_and_preset(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["train", "--resume", str(tmp_path / "m.last.pt"), "--preset", "small"]))
    assert "--preset cannot be combined with --resume" in line


def test_missing_output_without_resume(runner, folder):
    result = runner.invoke(cli, ["train", str(folder)])
    assert result.exit_code != 0
    assert "Missing option '--output' (or give --resume LAST_CHECKPOINT)" in result.output


def test_plot_command_redraws_run(runner, folder, tmp_path):
    output = tmp_path / "run" / "m.pt"
    assert runner.invoke(cli, train_args(folder, output, "--epochs", "1", "--hidden-size", "8", "--layers", "1")).exit_code == 0
    output.with_suffix(".loss.png").unlink()

    result = runner.invoke(cli, ["plot", str(output.parent)])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(output.with_suffix(".loss.png"))
    assert output.with_suffix(".loss.png").read_bytes()[:4] == b"\x89PNG"
    custom = tmp_path / "curve.png"
    assert runner.invoke(cli, ["plot", str(output.with_suffix(".metrics.csv")), "--output", str(custom)]).exit_code == 0
    assert custom.is_file()


def test_plot_errors_are_one_line(runner, tmp_path):
    assert "not found" in one_line_error(runner.invoke(cli, ["plot", str(tmp_path / "nope")]))
    assert "no *.metrics.csv file in" in one_line_error(runner.invoke(cli, ["plot", str(tmp_path)]))
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    assert "contains no training rows" in one_line_error(runner.invoke(cli, ["plot", str(other)]))


def test_threads_option_sets_torch_threads(runner, folder, tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        result = runner.invoke(cli, train_args(folder, tmp_path / "m.pt", "--threads", "2", "--max-steps", "2",
                                               "--hidden-size", "16", "--layers", "1", "--seq-len", "32"))
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert read_checkpoint(tmp_path / "m.pt")["train_config"]["threads"] == 2
    line = one_line_error(runner.invoke(cli, train_args(folder, tmp_path / "n.pt", "--threads", "-1")))
    assert "-1 is not in the range 0<=x<=1024" in line
