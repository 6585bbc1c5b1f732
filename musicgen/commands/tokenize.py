"""musicgen tokenize: print the tokens of one MIDI file, and write them back as MIDI to listen to."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import click

from musicgen.commands.ingest_options import TokenizerSetup, tokenizer_options
from musicgen.errors import MusicgenError

LINE_WIDTH = 100  # characters per output line of token names


class TokenizeError(MusicgenError):
    """A file that gives no tokens, or a --decode path that cannot be written."""


@click.command()
@click.argument("midi_file", type=click.Path(dir_okay=False, path_type=Path))
@tokenizer_options
@click.option("--model", "-m", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Use the tokenizer stored in this checkpoint instead of the tokenizer options.")
@click.option("--ids", "show_ids", is_flag=True, help="Print token ids instead of token names.")
@click.option("--decode", "decode_path", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="OUT.mid",
              help="Also decode the tokens and write them to OUT.mid, to hear what the tokenizer keeps; "
                   "an existing file is never replaced.")
def tokenize(midi_file: Path, tokenizer_setup: TokenizerSetup, model: Path | None, show_ids: bool,
             decode_path: Path | None) -> None:
    """Print the tokens of MIDI_FILE, as training would see them, wrapped into lines.

    A summary line (notes, tokens, repairs by the reader) goes to stderr, so stdout holds
    only the tokens.

    \b
    Examples:
      musicgen tokenize tune.mid
      musicgen tokenize song.mid --tokenizer event --decode song-events.mid
    """
    from musicgen.midi_io import MidiReadError, read_score

    tokenizer = _tokenizer(tokenizer_setup, model)
    if decode_path is not None and decode_path.exists():
        raise TokenizeError(f"{decode_path} already exists; choose another --decode path or delete the file")
    try:
        score = read_score(midi_file)
    except MidiReadError as error:
        raise TokenizeError(f"cannot read {midi_file}: {error}") from None
    ids, stats = _encode(tokenizer, score, midi_file)
    words = [str(token) for token in ids] if show_ids else tokenizer.token_names(ids)
    click.echo("\n".join(textwrap.wrap(" ".join(words), LINE_WIDTH, break_on_hyphens=False)))
    summary = f"{midi_file}: {stats.notes} notes, {len(ids)} tokens ({tokenizer.name} tokenizer)"
    if stats.folded_notes:
        summary += f", {stats.folded_notes} notes moved by octaves into the pitch range"
    click.echo(summary, err=True)
    for warning in score.warnings:
        click.echo(f"  repaired: {warning}", err=True)
    if decode_path is not None:
        _write_decoded(tokenizer, ids, score, decode_path)
        click.echo(f"wrote {decode_path}", err=True)


def _tokenizer(setup: TokenizerSetup, model: Path | None):
    if model is None:
        return setup.build()
    if setup != TokenizerSetup():
        raise click.UsageError("--model sets the tokenizer; drop the tokenizer options or --model")
    from musicgen.checkpoint import read_checkpoint
    from musicgen.tokenizer import tokenizer_from_dict

    return tokenizer_from_dict(read_checkpoint(model)["tokenizer"])


def _encode(tokenizer, score, path: Path):
    from musicgen.tokenizer import NoNotesError

    try:
        return tokenizer.encode_with_stats(score)
    except NoNotesError as error:
        raise TokenizeError(f"{path} gives no tokens: {error}; give a MIDI file with pitched notes") from None


def _write_decoded(tokenizer, ids: list[int], score, path: Path) -> None:
    """Decode `ids` at the file's first tempo and time signature and write them to `path`, never replacing a file."""
    signature = score.first_time_signature()
    midi = tokenizer.decode(ids, tempo=score.first_tempo().bpm, time_signature=(signature.numerator, signature.denominator))
    buffer = io.BytesIO()
    midi.write(buffer)
    try:
        with open(path, "xb") as stream:
            stream.write(buffer.getvalue())
    except FileExistsError:
        raise TokenizeError(f"{path} already exists; choose another --decode path or delete the file") from None
    except OSError as error:
        raise TokenizeError(f"cannot write {path}: {error.strerror or error}; choose another --decode path") from None
