"""Write melodies to .mid files with a JSON sidecar, never replacing an existing file."""

from __future__ import annotations

import difflib
import io
import json
from pathlib import Path
from typing import Any

from musicgen.errors import MusicgenError

_MAX_INDEX = 999_999


class ProgramError(MusicgenError, ValueError):
    """A --program that is neither a General MIDI number nor a General MIDI instrument name."""


def program_number(value: int | str) -> int:
    """Return the 0-based General MIDI program of a number (0..127) or an instrument name such as 'Violin'.

    Names follow pretty_midi's INSTRUMENT_MAP (the General MIDI 1 sound set) and are
    matched ignoring case, spaces and punctuation, so 'violin' and 'acoustic grand piano' work.
    """
    text = str(value).strip()
    if text.lstrip("+-").isdigit():
        if not 0 <= int(text) <= 127:
            raise ProgramError(f"invalid --program {text}: General MIDI programs are 0..127 (0 is Acoustic Grand Piano)")
        return int(text)
    import pretty_midi

    try:
        return pretty_midi.instrument_name_to_program(text)
    except ValueError:
        close = difflib.get_close_matches(text.title(), pretty_midi.INSTRUMENT_MAP, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ProgramError(
            f"unknown --program {text!r}{hint}; give a General MIDI number 0..127 or an instrument name such as "
            "'Violin' or 'Acoustic Grand Piano'"
        ) from None


def program_name(program: int) -> str:
    """Return the General MIDI 1 instrument name of a 0-based program, e.g. 40 -> 'Violin'."""
    import pretty_midi

    return pretty_midi.program_to_instrument_name(program)


def write_midi(midi: Any, output_dir: Path, stem: str, settings: dict[str, Any], first_index: int = 1) -> Path:
    """Write `midi` (a PrettyMIDI) as `stem-NNN.mid` with the next free number, plus `stem-NNN.json`.

    The settings go into a text meta event at tick 0 and into the sidecar, so the melody
    can be made again. Files are opened in exclusive mode, so an existing file is skipped
    to the next number instead of overwritten, even if another process writes at the same time.
    The search starts at `first_index`; a caller writing a batch passes the number after
    the file it wrote last, so a batch checks each existing name once rather than once per file.
    """
    import pretty_midi

    output_dir.mkdir(parents=True, exist_ok=True)
    text = "musicgen " + json.dumps(settings, sort_keys=True, ensure_ascii=True)
    midi.text_events.append(pretty_midi.Text(text, 0.0))
    data = _midi_bytes(midi)
    sidecar = json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    for index in range(max(first_index, 1), _MAX_INDEX + 1):
        path = output_dir / f"{stem}-{index:03d}.mid"
        json_path = path.with_suffix(".json")
        if path.exists() or json_path.exists():
            continue
        try:
            with open(path, "xb") as stream:
                stream.write(data)
        except FileExistsError:
            continue
        with open(json_path, "w", encoding="utf-8") as stream:
            stream.write(sidecar)
        return path
    raise FileExistsError(f"{output_dir} already contains {_MAX_INDEX} files named {stem}-NNN.mid; choose another --output-dir")


def _midi_bytes(midi: Any) -> bytes:
    """Serialize a PrettyMIDI; a one-tempo, one-instrument melody takes the fast writer below."""
    data = _melody_midi_bytes(midi)
    return data if data is not None else _pretty_midi_bytes(midi)


def _pretty_midi_bytes(midi: Any) -> bytes:
    """Serialize a PrettyMIDI with each set_tempo rounded to the nearest microsecond per quarter note.

    pretty_midi 0.2.11 truncates instead, so 90 BPM would be written as 666,666 µs rather
    than the 666,667 that mido.bpm2tempo and a 90 BPM seed file give.
    """
    import mido

    buffer = io.BytesIO()
    midi.write(buffer)
    buffer.seek(0)
    midi_file = mido.MidiFile(file=buffer)
    _, bpms = midi.get_tempo_changes()
    tempo_events = [(track, index) for track in midi_file.tracks for index, message in enumerate(track)
                    if message.type == "set_tempo"]
    if len(tempo_events) != len(bpms):
        return buffer.getvalue()
    for (track, index), bpm in zip(tempo_events, bpms):
        track[index] = track[index].copy(tempo=mido.bpm2tempo(bpm))
    output = io.BytesIO()
    midi_file.save(file=output)
    return output.getvalue()


def _melody_midi_bytes(midi: Any) -> bytes | None:
    """Return the bytes `_pretty_midi_bytes` gives for a simple melody, written directly; None for other shapes.

    A simple melody has one tempo, one pitched instrument without pitch bends or control
    changes, and no key signatures or lyrics: what the tokenizers decode. The layout is
    pretty_midi 0.2.11's: a format 1 file with a timing track (tempo, time signatures, text
    events) and one note track (name, program change, note-ons with velocity 0 as note-offs),
    each ending one tick after its last event. Skipping the pretty_midi and mido message
    objects makes writing about ten times faster (tests/test_sampling.py checks the bytes agree).
    """
    times, bpms = midi.get_tempo_changes()
    if len(bpms) != 1 or times[0] != 0 or len(midi.instruments) != 1 or midi.key_signature_changes or midi.lyrics:
        return None
    instrument = midi.instruments[0]
    if instrument.is_drum or instrument.pitch_bends or instrument.control_changes:
        return None
    microseconds_per_quarter = round(60_000_000 / bpms[0])
    if not 0 < microseconds_per_quarter <= 0xFFFFFF:  # a set_tempo value has 3 bytes
        return None
    ticks_per_second = bpms[0] * midi.resolution / 60.0

    def tick(seconds: float) -> int:
        return int(round(seconds * ticks_per_second))

    timing = [(0, _meta(0x51, microseconds_per_quarter.to_bytes(3, "big")))]
    if not any(signature.time <= 0.0 for signature in midi.time_signature_changes):
        timing.append((0, _time_signature(4, 4)))
    timing += [(tick(sig.time), _time_signature(sig.numerator, sig.denominator)) for sig in midi.time_signature_changes]
    timing += [(tick(event.time), _meta(0x01, event.text.encode("latin-1"))) for event in midi.text_events]
    timing.sort(key=lambda event: event[0])  # stable, so events at one tick keep the order above

    notes = []
    for note in instrument.notes:
        start, end = tick(note.start), tick(note.end)
        if end <= start:  # pretty_midi reorders the events of a note shorter than one tick
            return None
        notes.append((start, note.pitch, note.velocity))
        notes.append((end, note.pitch, 0))
    # pretty_midi's order: by tick, then pitch, then velocity, so a note-off precedes a note-on of its pitch.
    notes.sort()
    header = [(0, _meta(0x03, instrument.name.encode("latin-1")))] if instrument.name else []
    track = header + [(0, bytes((0xC0, instrument.program)))]
    track += [(at, bytes((0x90, pitch, velocity))) for at, pitch, velocity in notes]
    chunks = b"".join(_track_chunk(events) for events in (timing, track))
    return b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + (2).to_bytes(2, "big") + midi.resolution.to_bytes(2, "big") + chunks


def _meta(kind: int, data: bytes) -> bytes:
    return bytes((0xFF, kind)) + _variable_length(len(data)) + data


def _time_signature(numerator: int, denominator: int) -> bytes:
    # The last two bytes are mido's defaults: 24 MIDI clocks per metronome click, eight 32nd notes per quarter note.
    return _meta(0x58, bytes((numerator, denominator.bit_length() - 1, 24, 8)))


def _track_chunk(events: list[tuple[int, bytes]]) -> bytes:
    """Return an MTrk chunk of (absolute tick, event bytes), closed by end_of_track one tick after the last event.

    Channel messages use running status as mido 1.3 writes it: a status byte equal to the
    previous channel message's is left out, and a meta event clears it.
    """
    body = bytearray()
    previous, running = 0, None
    for at, event in events:
        body += _variable_length(at - previous)
        previous = at
        status = event[0]
        body += event[1:] if status == running else event
        running = status if status < 0xF0 else None
    body += _variable_length(1) + _meta(0x2F, b"")
    return b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def _variable_length(value: int) -> bytes:
    """Encode a non-negative integer as a MIDI variable-length quantity (7 bits per byte, high bit = more)."""
    data = [value & 0x7F]
    value >>= 7
    while value:
        data.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(data))
