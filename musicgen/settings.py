"""Named presets and config files of `musicgen train`, and the order in which they apply.

The value of each setting comes from the first of these that sets it: the command line,
the config file (`--config`), the preset (`--preset`), the option's default. Settings
are named like the command-line options with underscores (`hidden_size` for
`--hidden-size`); a config file may also spell them with dashes.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from musicgen.config import ConfigError

# Each preset sets the shape of the model and the schedule of the run; every other
# setting keeps its default. `base` is the model of the defaults with a cosine schedule.
PRESETS: dict[str, dict[str, Any]] = {
    # A quick look at a few hundred files on a laptop CPU (minutes, not hours).
    "small": {
        "cell": "lstm", "embedding_size": 32, "hidden_size": 128, "layers": 1, "dropout": 0.1,
        "seq_len": 64, "batch_size": 32, "lr": 3e-3, "lr_schedule": "constant", "warmup_steps": 0,
        "weight_decay": 0.0, "epochs": 10, "patience": 3,
    },
    # The default model (2 x 256 LSTM) with warm-up, cosine decay and early stopping.
    "base": {
        "cell": "lstm", "embedding_size": 64, "hidden_size": 256, "layers": 2, "dropout": 0.2,
        "seq_len": 128, "batch_size": 64, "lr": 2e-3, "lr_schedule": "cosine", "warmup_steps": 100,
        "weight_decay": 0.0, "epochs": 30, "patience": 5,
    },
    # Thousands of files on a GPU: 3 x 512 LSTM over longer windows, with weight decay.
    "large": {
        "cell": "lstm", "embedding_size": 128, "hidden_size": 512, "layers": 3, "dropout": 0.3,
        "seq_len": 256, "batch_size": 64, "lr": 1e-3, "lr_schedule": "cosine", "warmup_steps": 500,
        "weight_decay": 0.01, "epochs": 50, "patience": 8,
    },
}

# Settings a config file may not set, because they name this invocation rather than the run.
NOT_IN_CONFIG_FILES = ("config", "resume", "overwrite", "no_progress")
CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a flat TOML or YAML table of settings; keys come back with underscores, values unchecked."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}; give a .toml or .yaml file of settings")
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"{path}: unknown config file type {suffix!r}; use {', '.join(CONFIG_SUFFIXES)}")
    # surrogateescape keeps file names that are not valid UTF-8 (as `to_toml` writes them) intact.
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    data = _parse_yaml(path, text) if suffix in (".yaml", ".yml") else _parse_toml(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings such as 'epochs = 10' (found a {type(data).__name__})")
    settings = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if isinstance(value, dict):
            raise ConfigError(f"{path}: setting `{key}` is a table; write settings as plain 'name = value' lines")
        if name in NOT_IN_CONFIG_FILES:
            raise ConfigError(f"{path}: `{key}` cannot be set in a config file; give it on the command line")
        settings[name] = value
    return settings


def _parse_toml(path: Path, text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML ({error})") from None


def _parse_yaml(path: Path, text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{path}: invalid YAML ({first_line})") from None


def preset_settings(name: str) -> dict[str, Any]:
    """Return a copy of the settings of preset `name`."""
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)} (received {name!r})")
    return dict(PRESETS[name])


def to_toml(settings: dict[str, Any], header: str = "") -> str:
    """Write flat settings as TOML lines that `read_config_file` reads back; None values are left out."""
    lines = [f"# {line}" for line in header.splitlines()]
    for name, value in settings.items():
        if value is None:
            continue
        lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # JSON string escapes are valid in TOML basic strings.
    return json.dumps(str(value), ensure_ascii=False)


def json_ready(value: Any) -> Any:
    """Return `value` with paths as strings and tuples as lists, so it can go into JSON and checkpoints."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    return value
