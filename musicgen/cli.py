"""Command line: the musicgen group, its error handling, and the registered commands.

Heavy imports (torch, pretty_midi, music21) happen inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import logging

import click

from musicgen import __version__
from musicgen.commands.corpus import corpus
from musicgen.commands.evaluate import evaluate
from musicgen.commands.generate import generate
from musicgen.commands.inspect import inspect
from musicgen.commands.models_cmd import models
from musicgen.commands.plot import plot
from musicgen.commands.render import render
from musicgen.commands.stats import stats
from musicgen.commands.tokenize import tokenize
from musicgen.commands.train import train
from musicgen.logging_setup import configure_logging

logger = logging.getLogger("musicgen")


class MusicgenGroup(click.Group):
    """Turn musicgen's own errors into one 'Error: ...' line and exit code 1."""

    def invoke(self, ctx: click.Context):
        from musicgen.errors import MusicgenError
        from musicgen.midi_io import MidiReadError

        try:
            return super().invoke(ctx)
        except (MusicgenError, MidiReadError, FileExistsError) as error:
            logger.debug("traceback of the error below", exc_info=True)
            raise click.ClickException(str(error)) from None


@click.group(cls=MusicgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="musicgen")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail and show tracebacks of errors.")
def cli(verbose: bool) -> None:
    """Learn melodies from a folder of MIDI files with a recurrent network and write new ones."""
    configure_logging(verbose)


for command in (train, generate, corpus, evaluate, stats, render, models, tokenize, inspect, plot):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="musicgen")
