"""The order in which `musicgen train` settles each setting before the command runs.

A setting takes the first value found in: the command line, the config file (--config),
the preset (--preset), the option's default. With --resume, the resumed run's stored
settings replace the config file, the preset and the defaults, and the command line may
change only the settings in RESUME_MAY_CHANGE. With --init-from, the model shape and the
tokenizer come from that checkpoint; a different value given anywhere is an error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from musicgen.config import ConfigError
from musicgen.settings import NOT_IN_CONFIG_FILES, preset_settings, read_config_file

logger = logging.getLogger(__name__)

COMMAND_LINE, DEFAULT = "command line", "default"
_EXPLICIT = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)
# A resumed run may change how long and where it runs, but not what it learns.
RESUME_MAY_CHANGE = (
    "midi_dir", "output", "epochs", "max_minutes", "max_steps", "save_every", "log_every", "patience", "device",
    "precision", "workers", "cache_dir", "no_cache", "threads",
)
MODEL_SHAPE = ("cell", "embedding_size", "hidden_size", "layers")
# Settings that describe this invocation only; checkpoints and the run's .config.toml leave them out.
NOT_STORED = ("config", "preset", "resume", "overwrite", "no_progress")
SOURCES_KEY = "musicgen.setting_sources"
RESUME_KEY = "musicgen.resume_payload"
INIT_KEY = "musicgen.init_payload"


class TrainCommand(click.Command):
    """A click command that settles presets, config files and checkpoints into ctx.params before running."""

    def invoke(self, ctx: click.Context) -> Any:
        from musicgen.malloc_tuning import keep_freed_memory

        keep_freed_memory()  # before torch allocates its first large buffers
        settle_settings(ctx)
        return super().invoke(ctx)


def settle_settings(ctx: click.Context) -> None:
    """Fill ctx.params from the preset, config file or checkpoint, and record where each value came from."""
    params = ctx.params
    sources = {name: COMMAND_LINE if ctx.get_parameter_source(name) in _EXPLICIT else DEFAULT for name in params}
    if params.get("resume") is not None:
        _apply_resumed_run(ctx, sources)
    else:
        _apply_preset_and_config_file(ctx, sources)
        if params.get("init_from") is not None:
            _apply_init_checkpoint(ctx, sources)
    ctx.meta[SOURCES_KEY] = sources


def stored_settings(ctx: click.Context) -> dict[str, Any]:
    """Return the settings a checkpoint stores: every parameter but those of this invocation alone."""
    from musicgen.settings import json_ready

    return {name: json_ready(value) for name, value in ctx.params.items() if name not in NOT_STORED}


def log_settings(ctx: click.Context) -> None:
    """Log every effective setting with where its value came from."""
    sources = ctx.meta.get(SOURCES_KEY, {})
    lines = [f"  {name} = {value!r}  ({sources.get(name, DEFAULT)})" for name, value in sorted(stored_settings(ctx).items())]
    logger.info("settings of this run:\n%s", "\n".join(lines))


def _parameters(ctx: click.Context) -> dict[str, click.Parameter]:
    return {param.name: param for param in ctx.command.params if param.name}


def _convert(ctx: click.Context, name: str, value: Any, origin: str) -> Any:
    """Check and convert a value from a file or checkpoint as click converts the same option's text."""
    if value is None:
        return None
    param = _parameters(ctx)[name]
    try:
        return param.type_cast_value(ctx, value)
    except click.BadParameter as error:
        raise ConfigError(f"{origin}: invalid {name} = {value!r}: {error.message}") from None


def _apply_preset_and_config_file(ctx: click.Context, sources: dict[str, str]) -> None:
    params, known = ctx.params, _parameters(ctx)
    path: Path | None = params.get("config")
    file_values = read_config_file(path) if path is not None else {}
    unknown = sorted(name for name in file_values if name not in known)
    if unknown:
        allowed = ", ".join(sorted(name for name in known if name not in NOT_IN_CONFIG_FILES))
        raise ConfigError(f"{path}: unknown setting `{unknown[0]}`; the settings are: {allowed}")
    if "preset" in file_values and sources.get("preset") != COMMAND_LINE:
        params["preset"] = _convert(ctx, "preset", file_values["preset"], f"config file {path}")
        sources["preset"] = f"config file {path}"
    layers = []
    if params.get("preset"):
        layers.append((f"preset {params['preset']}", preset_settings(params["preset"])))
    if path is not None:
        layers.append((f"config file {path}", {name: value for name, value in file_values.items() if name != "preset"}))
    for origin, values in layers:
        for name, value in values.items():
            if sources.get(name) != COMMAND_LINE:
                params[name] = _convert(ctx, name, value, origin)
                sources[name] = origin


def _apply_resumed_run(ctx: click.Context, sources: dict[str, str]) -> None:
    from musicgen.checkpoint import CheckpointError, read_checkpoint

    params = ctx.params
    for name in ("config", "preset", "init_from"):
        if params.get(name) is not None:
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} cannot be combined with --resume, because a resumed run keeps its own settings")
    path: Path = params["resume"]
    payload = read_checkpoint(path, verify=True)
    if "training_state" not in payload:
        raise CheckpointError(
            f"{path} contains no training state (it is a best checkpoint); resume from the run's .last checkpoint beside it"
        )
    for name, value in payload.get("settings", {}).items():
        if name not in params or name in NOT_STORED or name in ("output", "init_from"):
            continue
        stored = _convert(ctx, name, value, f"resumed checkpoint {path}")
        if sources.get(name) != COMMAND_LINE:
            params[name], sources[name] = stored, "resumed run"
        elif name not in RESUME_MAY_CHANGE and params[name] != stored:
            raise ConfigError(
                f"{_option(name)} {params[name]!r} differs from the resumed run's {stored!r}; a resumed run keeps its "
                f"settings (start a new run from its weights with --init-from {path} to change it)"
            )
    if sources.get("output") != COMMAND_LINE:
        params["output"], sources["output"] = path.parent / payload["best_checkpoint"], "resumed run"
    ctx.meta[RESUME_KEY] = payload


def _apply_init_checkpoint(ctx: click.Context, sources: dict[str, str]) -> None:
    from musicgen.checkpoint import read_checkpoint

    params = ctx.params
    path: Path = params["init_from"]
    payload = read_checkpoint(path, verify=True)
    model, tokenizer = payload.get("model_config", {}), payload.get("tokenizer", {})
    fixed = {name: model[name] for name in MODEL_SHAPE if name in model}
    fixed["mode"] = model.get("mode", "many-to-many")
    if model.get("conditions"):
        fixed["condition"] = ",".join(model["conditions"])
    fixed["tokenizer"] = tokenizer.get("tokenizer")
    fixed.update(tokenizer.get("config", {}))
    for name, value in fixed.items():
        if name not in params or value is None:
            continue
        if sources.get(name) == DEFAULT:
            params[name], sources[name] = _convert(ctx, name, value, f"--init-from {path}"), f"--init-from {path.name}"
        elif params[name] != value:
            raise ConfigError(
                f"{name} = {params[name]!r} (from {sources[name]}) does not match {value!r} in the --init-from "
                f"checkpoint {path}; fine-tuning keeps the model shape and the tokenizer, so drop the setting"
            )
    ctx.meta[INIT_KEY] = payload


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")
