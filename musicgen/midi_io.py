"""Lenient reader for Standard MIDI Files (SMF) as found in folders downloaded from the web.

The reader parses the bytes itself, because the loaders of mido and pretty_midi reject
or misread many such files. `read_score` returns a `Score` whose times are ticks of the
file, with one warning line per kind of repair. It raises `MidiReadError`, with a short
reason, for a file it cannot read. Deciding whether a file has usable notes is left to
the caller.

Rules applied to every file:

- A RIFF 'RMID' wrapper is removed and the SMF in its 'data' chunk is read.
- An end-of-track meta event does not stop the track: events up to the end of the
  track chunk are still read, because some writers leave events after it.
- Only channel messages set running status. Meta, sysex and system events neither set
  nor cancel it (mido 1.3 likewise keeps running status across meta events).
- Data bytes above 127 are clipped to 127.
- A note-off, or a note-on with velocity 0, closes the oldest open note of the same
  track, channel and pitch. An off with no open note is ignored. A note whose off falls
  on its own onset tick is dropped. A note still open when its track ends is closed at
  the tick of the last event of that track.
- The program of a note is the last program change on its channel at or before its
  onset tick, taken from all tracks.
- Tempo, time signature and key signature events from all tracks form one map each.
- Format 2 tracks are read from tick 0, like the tracks of a format 1 file.
- An event past `ReadLimits.max_quarters` ends its track with a warning. The events
  before it are kept, so one corrupt delta time does not lose the file.
- SMPTE time division (frames per second times ticks per frame) is read as the number
  of ticks per quarter note that lasts 0.5 s, with one fixed tempo close to 120 BPM
  that keeps the file's seconds. Tempo events of such a file are ignored.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from musicgen.constants import DEFAULT_PROGRAM, DEFAULT_US_PER_QUARTER, DRUM_CHANNEL
from musicgen.score import KeySignature, Note, Score, TempoChange, TimeSignature

if TYPE_CHECKING:
    import pretty_midi

logger = logging.getLogger(__name__)

DATA_BYTE_MAX = 127
VARIABLE_LENGTH_MAX_BYTES = 4  # SMF delta times and lengths use at most 4 bytes
# MacBinary and similar wrappers put a header of 128 bytes before the MThd chunk.
HEADER_SEARCH_BYTES = 512
# A tempo below 1000 µs per quarter note (above 60,000 BPM) comes from a corrupt event.
# The 3-byte field cannot exceed 16,777,215 µs (about 3.6 BPM), so there is no upper check.
MIN_US_PER_QUARTER = 1000
MAX_DENOMINATOR_EXPONENT = 6  # 2**6 = 64
KEY_SIGNATURE_MAX_ACCIDENTALS = 7
EVENTS_PER_TIME_CHECK = 4096
# Frames per second for each SMPTE code. Code 29 means 29.97 (drop-frame).
SMPTE_FRAME_RATES = {24: 24.0, 25: 25.0, 29: 30000 / 1001, 30: 30.0}
# Data bytes after a channel status, by its high nibble.
CHANNEL_DATA_LENGTHS = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
# Data bytes after a system common status. Other system statuses carry none.
SYSTEM_DATA_LENGTHS = {0xF1: 1, 0xF2: 2, 0xF3: 1}
META_END_OF_TRACK = 0x2F
META_TEMPO = 0x51
META_TIME_SIGNATURE = 0x58
META_KEY_SIGNATURE = 0x59
PITCHED_CHANNELS = [channel for channel in range(16) if channel != DRUM_CHANNEL]


class MidiReadError(Exception):
    """Failure to read a MIDI file, with one short reason such as 'not a MIDI file: no MThd header'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ReadLimits:
    """Caps that keep one damaged or hostile file from using unbounded memory or time."""

    max_bytes: int = 32 * 1024 * 1024  # size of the file
    max_events: int = 2_000_000  # MIDI events in all tracks together
    max_quarters: int = 200_000  # length of any track, in quarter notes; later events are skipped
    max_seconds: float = 20.0  # wall time of one read, checked every few thousand events


class _TrackStop(Exception):
    """Signal that the rest of a track chunk cannot be read, with the kind and text of its warning."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _WarningLog:
    """Warnings grouped by kind, so a damaged file gives one line per kind, not thousands."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}
        self._counts: Counter[str] = Counter()

    def add(self, kind: str, message: str) -> None:
        self._first.setdefault(kind, message)
        self._counts[kind] += 1

    def lines(self) -> list[str]:
        lines = []
        for kind, message in self._first.items():
            more = self._counts[kind] - 1
            lines.append(f"{message} (and {more} more like it)" if more else message)
        return lines


class _Budget:
    """Event, length and wall-time caps of one read."""

    def __init__(self, limits: ReadLimits, ticks_per_quarter: int) -> None:
        self.limits = limits
        self.ticks_per_quarter = ticks_per_quarter
        self.max_tick = limits.max_quarters * ticks_per_quarter
        self.events = 0
        self.started = time.monotonic()

    def count_event(self) -> None:
        """Count one event and raise MidiReadError when the event or time cap is passed.

        An event past max_quarters stops its track instead (see `_TrackParser`), so a file
        with one corrupt delta time keeps the notes before it.
        """
        self.events += 1
        if self.events > self.limits.max_events:
            raise MidiReadError(f"too many events: over the limit of {self.limits.max_events}")
        if self.events % EVENTS_PER_TIME_CHECK == 0:
            self.check_time()

    def check_time(self) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed > self.limits.max_seconds:
            raise MidiReadError(f"timed out: reading took {elapsed:.1f} s (limit {self.limits.max_seconds:g} s)")


@dataclass(frozen=True)
class _Header:
    format: int
    track_count: int
    division: int
    end: int  # offset of the first byte after the MThd chunk


@dataclass
class _Track:
    """Events of one track chunk. A note event with velocity 0 is a note-off."""

    index: int
    note_events: list[tuple[int, int, int, int]] = field(default_factory=list)  # tick, channel, pitch, velocity
    end_tick: int = 0  # tick of the last complete event


@dataclass
class _FileEvents:
    """Events shared by all tracks of one file, with the caps and warnings of the read."""

    budget: _Budget
    warnings: _WarningLog
    smpte: bool
    tempos: list[TempoChange] = field(default_factory=list)
    time_signatures: list[TimeSignature] = field(default_factory=list)
    key_signatures: list[KeySignature] = field(default_factory=list)
    program_changes: list[tuple[int, int, int]] = field(default_factory=list)  # tick, channel, program


def read_score(source: str | os.PathLike[str] | bytes, limits: ReadLimits = ReadLimits()) -> Score:
    """Read a MIDI file from a path or from its bytes into a Score.

    Raises MidiReadError, and no other exception, for a file that cannot be read or
    that passes a cap of `limits`. A readable file without notes gives an empty Score.
    """
    data = _load_bytes(source, limits)
    data = _unwrap_riff(data)
    warnings = _WarningLog()
    header = _read_header(data, warnings)
    ticks_per_quarter, smpte_tempo = _read_division(header.division, warnings)
    if header.format == 2:
        warnings.add("format", "format 2 file: every track is read from tick 0")
    elif header.format > 2:
        warnings.add("format", f"unknown SMF format {header.format}: read as format 1")

    events = _FileEvents(_Budget(limits, ticks_per_quarter), warnings, smpte=smpte_tempo is not None)
    chunks = _find_track_chunks(data, header, warnings)
    tracks = [_TrackParser(chunk, index, events).parse() for index, chunk in enumerate(chunks)]
    events.budget.check_time()
    notes = _pair_all_notes(tracks, events)
    events.budget.check_time()

    tempos = [TempoChange(0, smpte_tempo)] if smpte_tempo is not None else events.tempos
    return Score(
        ticks_per_quarter=ticks_per_quarter,
        notes=notes,
        tempos=sorted(tempos, key=lambda tempo: tempo.tick),
        time_signatures=sorted(events.time_signatures, key=lambda signature: signature.tick),
        warnings=warnings.lines(),
        key_signatures=sorted(events.key_signatures, key=lambda signature: signature.tick),
    )


def _load_bytes(source: str | os.PathLike[str] | bytes, limits: ReadLimits) -> bytes:
    """Return the bytes of `source`, which is a path or the file's bytes, within max_bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or bytes, not {type(source).__name__}")
    else:
        try:
            with open(source, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size > limits.max_bytes:
                    raise MidiReadError(f"file is too large: {size} bytes (limit {limits.max_bytes})")
                data = file.read(limits.max_bytes + 1)
        except OSError as error:
            raise MidiReadError(f"cannot read file: {error.strerror or error}") from error
        except ValueError as error:  # open() rejects a path with an embedded null byte
            raise MidiReadError(f"cannot read file: {error}") from error
    if len(data) > limits.max_bytes:
        raise MidiReadError(f"file is too large: {len(data)} bytes (limit {limits.max_bytes})")
    return data


def _unwrap_riff(data: bytes) -> bytes:
    """Return the 'data' chunk of a RIFF 'RMID' file, or `data` itself for any other file."""
    if data[:4] != b"RIFF" or data[8:12] != b"RMID":
        return data
    position = 12
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if chunk_id == b"data":
            return data[position + 8 : position + 8 + size]
        position += 8 + size + (size & 1)  # RIFF pads every chunk to an even length
    raise MidiReadError("not a MIDI file: RIFF RMID file without a 'data' chunk")


def _read_header(data: bytes, warnings: _WarningLog) -> _Header:
    """Read the MThd chunk, honouring a declared length above the usual 6 bytes."""
    start = data.find(b"MThd", 0, HEADER_SEARCH_BYTES)
    if start < 0:
        raise MidiReadError("not a MIDI file: no MThd header")
    if start > 0:
        warnings.add("prefix", f"skipped {_count_of(start, 'byte')} before the MThd header")
    fields = data[start + 8 : start + 14]
    if len(fields) < 6:
        raise MidiReadError("invalid MThd header: truncated")
    length = int.from_bytes(data[start + 4 : start + 8], "big")
    if length < 6:
        raise MidiReadError(f"invalid MThd header: length {length} (expected at least 6)")
    if start + 8 + length > len(data):
        warnings.add("header", f"MThd header declares {length} bytes, more than the file has, so 6 were read")
        length = 6
    return _Header(
        format=int.from_bytes(fields[0:2], "big"),
        track_count=int.from_bytes(fields[2:4], "big"),
        division=int.from_bytes(fields[4:6], "big"),
        end=start + 8 + length,
    )


def _read_division(division: int, warnings: _WarningLog) -> tuple[int, int | None]:
    """Return ticks per quarter note and, for SMPTE timing, the fixed tempo in µs per quarter note."""
    if division == 0:
        raise MidiReadError("invalid MThd header: time division 0")
    if division < 0x8000:
        return division, None

    frame_code = 256 - (division >> 8)  # the high byte is the frame rate, negated
    ticks_per_frame = division & 0xFF
    frames_per_second = SMPTE_FRAME_RATES.get(frame_code)
    if frames_per_second is None or ticks_per_frame == 0:
        raise MidiReadError(f"invalid MThd header: SMPTE division {frame_code} fps x {ticks_per_frame} ticks per frame")
    ticks_per_second = frames_per_second * ticks_per_frame
    # A quarter note at 120 BPM lasts 0.5 s. The tempo is then adjusted so that ticks keep their seconds.
    ticks_per_quarter = max(1, round(ticks_per_second * DEFAULT_US_PER_QUARTER / 1e6))
    us_per_quarter = round(ticks_per_quarter * 1e6 / ticks_per_second)
    warnings.add(
        "smpte",
        f"SMPTE timing ({frame_code} fps x {ticks_per_frame} ticks per frame): read as {ticks_per_quarter} "
        f"ticks per quarter note at {us_per_quarter} µs per quarter note, ignoring tempo events",
    )
    return ticks_per_quarter, us_per_quarter


def _find_track_chunks(data: bytes, header: _Header, warnings: _WarningLog) -> list[bytes]:
    """Return the body of every MTrk chunk, skipping other chunks and ignoring trailing bytes."""
    chunks = []
    position = header.end
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        length = int.from_bytes(data[position + 4 : position + 8], "big")
        body = data[position + 8 : position + 8 + length]
        if chunk_id == b"MTrk":
            if len(body) < length:
                warnings.add("truncated", f"truncated track {len(chunks)}: {len(body)} of {length} bytes present")
            chunks.append(body)
        elif not _is_chunk_id(chunk_id):
            break
        else:
            logger.debug("skipped chunk %r of %d bytes", chunk_id, length)
        position += 8 + length

    if position < len(data):
        warnings.add("trailing", f"ignored {_count_of(len(data) - position, 'byte')} after the last chunk")
    if not chunks:
        raise MidiReadError("no tracks: no MTrk chunk found")
    if len(chunks) != header.track_count:
        warnings.add("track count", f"MThd header declares {header.track_count} tracks, found {len(chunks)}")
    return chunks


def _is_chunk_id(chunk_id: bytes) -> bool:
    return all(0x20 <= byte <= 0x7E for byte in chunk_id)


class _TrackParser:
    """Parser of one MTrk chunk body into note events and the file-wide meta events."""

    def __init__(self, body: bytes, index: int, events: _FileEvents) -> None:
        self.body = body
        self.position = 0
        self.tick = 0
        self.running_status: int | None = None
        self.after_end_of_track = False
        self.track = _Track(index)
        self.events = events

    def parse(self) -> _Track:
        try:
            self._read_events()
        except _TrackStop as stop:
            self.events.warnings.add(stop.kind, stop.message)
        return self.track

    def _read_events(self) -> None:
        """Read the events of the chunk one by one, setting `end_tick` after each complete event.

        Delta times, status bytes and channel messages, nearly all of a file, are read
        here with local variables rather than one method call per byte, which made a
        whole read about 1.5 times faster. Meta, sysex and system events go through the
        methods below, and so does a channel message cut off by the end of the chunk.
        """
        body, end = self.body, len(self.body)
        budget, track = self.events.budget, self.track
        while self.position < end:
            position = self.position
            delta = 0
            for _ in range(VARIABLE_LENGTH_MAX_BYTES):
                if position >= end:
                    raise _TrackStop("cut", f"track {track.index} ends in the middle of an event")
                byte = body[position]
                position += 1
                delta = (delta << 7) | (byte & 0x7F)
                if byte < 0x80:
                    break
            self.tick += delta
            if self.tick > budget.max_tick:
                quarters = self.tick // budget.ticks_per_quarter
                raise _TrackStop("too long", f"track {track.index}: skipped events from quarter note {quarters} on, "
                                             f"past the limit of {budget.limits.max_quarters}")
            budget.count_event()
            if self.after_end_of_track:
                self.after_end_of_track = False
                self.events.warnings.add("after end", f"track {track.index}: read events after its end-of-track event")

            if position >= end:
                raise _TrackStop("cut", f"track {track.index} ends in the middle of an event")
            status = body[position]
            if status >= 0x80:
                position += 1
                if status < 0xF0:
                    self.running_status = status
            elif self.running_status is None:
                message = f"track {track.index}: data byte 0x{status:02X} without a status byte, rest of track skipped"
                raise _TrackStop("no status", message)
            else:
                status = self.running_status  # running status: this byte is the first data byte
            self.position = position

            if status >= 0xF0:
                self._read_system_event(status)
            elif position + CHANNEL_DATA_LENGTHS[status & 0xF0] > end:
                self._read_channel_message(status)  # raises _TrackStop at the cut
            else:
                self._read_complete_channel_message(status)
            track.end_tick = self.tick

    def _read_system_event(self, status: int) -> None:
        """Read a meta, sysex or system event whose status byte has been read."""
        if status == 0xFF:
            self._read_meta_event()
        elif status in (0xF0, 0xF7):
            self._read_bytes(self._read_variable_length())  # sysex message or escaped bytes
        else:
            self.events.warnings.add("system", f"track {self.track.index}: ignored system message 0x{status:02X}")
            self._read_bytes(SYSTEM_DATA_LENGTHS.get(status, 0))

    def _read_complete_channel_message(self, status: int) -> None:
        """Read a channel message whose data bytes all lie inside the chunk."""
        kind, position = status & 0xF0, self.position
        first = self.body[position]
        if first > DATA_BYTE_MAX:
            first = self._clip(first)
        if kind == 0xC0 or kind == 0xD0:
            self.position = position + 1
            if kind == 0xC0:
                self.events.program_changes.append((self.tick, status & 0x0F, first))
            return
        second = self.body[position + 1]
        if second > DATA_BYTE_MAX:
            second = self._clip(second)
        self.position = position + 2
        if kind == 0x90:
            self.track.note_events.append((self.tick, status & 0x0F, first, second))
        elif kind == 0x80:
            self.track.note_events.append((self.tick, status & 0x0F, first, 0))

    def _clip(self, byte: int) -> int:
        self.events.warnings.add("clipped", f"track {self.track.index}: clipped data byte 0x{byte:02X} to 127")
        return DATA_BYTE_MAX

    def _read_byte(self) -> int:
        if self.position >= len(self.body):
            raise _TrackStop("cut", f"track {self.track.index} ends in the middle of an event")
        byte = self.body[self.position]
        self.position += 1
        return byte

    def _read_bytes(self, count: int) -> bytes:
        skipped = self.body[self.position : self.position + count]
        self.position += count
        if self.position > len(self.body):
            raise _TrackStop("cut", f"track {self.track.index} ends in the middle of an event")
        return skipped

    def _read_variable_length(self) -> int:
        value = 0
        for _ in range(VARIABLE_LENGTH_MAX_BYTES):
            byte = self._read_byte()
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        return value

    def _read_data_byte(self) -> int:
        byte = self._read_byte()
        return self._clip(byte) if byte > DATA_BYTE_MAX else byte

    def _read_channel_message(self, status: int) -> None:
        kind = status & 0xF0
        channel = status & 0x0F
        data = [self._read_data_byte() for _ in range(CHANNEL_DATA_LENGTHS[kind])]
        if kind == 0x90:
            self.track.note_events.append((self.tick, channel, data[0], data[1]))
        elif kind == 0x80:
            self.track.note_events.append((self.tick, channel, data[0], 0))
        elif kind == 0xC0:
            self.events.program_changes.append((self.tick, channel, data[0]))

    def _read_meta_event(self) -> None:
        meta_type = self._read_byte()
        payload = self._read_bytes(self._read_variable_length())
        if meta_type == META_END_OF_TRACK:
            self.after_end_of_track = True
        elif meta_type == META_TEMPO:
            self._read_tempo(payload)
        elif meta_type == META_TIME_SIGNATURE:
            self._read_time_signature(payload)
        elif meta_type == META_KEY_SIGNATURE:
            self._read_key_signature(payload)

    def _read_tempo(self, payload: bytes) -> None:
        if self.events.smpte:
            return
        if len(payload) < 3:
            self._warn_meta("tempo", f"tempo of {_count_of(len(payload), 'byte')} (expected 3)")
            return
        us_per_quarter = int.from_bytes(payload[:3], "big")
        if us_per_quarter < MIN_US_PER_QUARTER:
            self._warn_meta("tempo", f"invalid tempo of {us_per_quarter} µs per quarter note")
            return
        self.events.tempos.append(TempoChange(self.tick, us_per_quarter))

    def _read_time_signature(self, payload: bytes) -> None:
        if len(payload) < 2:
            self._warn_meta("time signature", f"time signature of {_count_of(len(payload), 'byte')} (expected 4)")
            return
        if payload[0] == 0 or payload[1] > MAX_DENOMINATOR_EXPONENT:
            self._warn_meta("time signature", f"invalid time signature {payload[0]}/2**{payload[1]}")
            return
        self.events.time_signatures.append(TimeSignature(self.tick, payload[0], 2 ** payload[1]))

    def _read_key_signature(self, payload: bytes) -> None:
        if len(payload) < 2:
            self._warn_meta("key signature", f"key signature of {_count_of(len(payload), 'byte')} (expected 2)")
            return
        sharps_flats = int.from_bytes(payload[:1], "big", signed=True)
        if abs(sharps_flats) > KEY_SIGNATURE_MAX_ACCIDENTALS or payload[1] > 1:
            accidentals = _count_of(abs(sharps_flats), "flat" if sharps_flats < 0 else "sharp")
            self._warn_meta("key signature", f"invalid key signature of {accidentals}, mode {payload[1]}")
            return
        self.events.key_signatures.append(KeySignature(self.tick, sharps_flats, minor=payload[1] == 1))

    def _warn_meta(self, kind: str, description: str) -> None:
        self.events.warnings.add(kind, f"ignored {description} at tick {self.tick} of track {self.track.index}")


class _ProgramMap:
    """General MIDI program in effect on each channel, by tick, from the program changes of all tracks."""

    def __init__(self, program_changes: list[tuple[int, int, int]]) -> None:
        self.ticks: dict[int, list[int]] = defaultdict(list)
        self.programs: dict[int, list[int]] = defaultdict(list)
        # The sort is stable, so at one tick the later track, or the later event, wins.
        for tick, channel, program in sorted(program_changes, key=lambda change: change[0]):
            self.ticks[channel].append(tick)
            self.programs[channel].append(program)

    def program_at(self, channel: int, tick: int) -> int:
        ticks = self.ticks.get(channel)
        if not ticks:
            return DEFAULT_PROGRAM
        index = bisect.bisect_right(ticks, tick) - 1
        return self.programs[channel][index] if index >= 0 else DEFAULT_PROGRAM


def _pair_all_notes(tracks: list[_Track], events: _FileEvents) -> list[Note]:
    """Pair the note-ons and note-offs of every track into notes sorted by onset tick."""
    programs = _ProgramMap(events.program_changes)
    counts: Counter[str] = Counter()
    notes: list[Note] = []
    for track in tracks:
        notes.extend(_pair_track_notes(track, programs, counts))
        events.budget.check_time()

    if counts["zero length"]:
        events.warnings.add("zero length", f"dropped {_count_of(counts['zero length'], 'note')} of zero length")
    if counts["unterminated"]:
        unterminated = _count_of(counts["unterminated"], "note")
        events.warnings.add("unterminated", f"closed {unterminated} left on at the end of their track")
    return sorted(notes, key=lambda note: (note.start_tick, note.track, note.channel, note.pitch, note.end_tick))


def _count_of(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _pair_track_notes(track: _Track, programs: _ProgramMap, counts: Counter[str]) -> list[Note]:
    """Close each open note with the next off of its channel and pitch, oldest note first."""
    open_notes: dict[tuple[int, int], deque[tuple[int, int]]] = defaultdict(deque)
    notes: list[Note] = []
    program_at = programs.program_at
    for tick, channel, pitch, velocity in track.note_events:
        waiting = open_notes[(channel, pitch)]
        if velocity > 0:
            waiting.append((tick, velocity))
        elif waiting:
            # The same step as _add_note, inline because it runs once per note of the file.
            start, start_velocity = waiting.popleft()
            if tick > start:
                notes.append(Note(pitch, start_velocity, start, tick, channel, program_at(channel, start), track.index))
            else:
                counts["zero length"] += 1

    for (channel, pitch), waiting in open_notes.items():
        for start, start_velocity in waiting:
            if track.end_tick > start:
                counts["unterminated"] += 1
            _add_note(notes, counts, (start, track.end_tick, channel, pitch, start_velocity), track.index, programs)
    return notes


def _add_note(
    notes: list[Note],
    counts: Counter[str],
    timing: tuple[int, int, int, int, int],
    track_index: int,
    programs: _ProgramMap,
) -> None:
    """Append the note given as (start, end, channel, pitch, velocity), or count it when its length is zero."""
    start, end, channel, pitch, velocity = timing
    if end <= start:
        counts["zero length"] += 1
        return
    program = programs.program_at(channel, start)
    notes.append(Note(pitch, velocity, start, end, channel=channel, program=program, track=track_index))


def score_from_pretty_midi(pm: pretty_midi.PrettyMIDI) -> Score:
    """Convert a PrettyMIDI object into a Score, turning its times in seconds into ticks.

    Drum instruments get channel 9. Pitched instruments get the channel that
    `PrettyMIDI.write` gives them: instrument number n takes the n-th of the channels
    other than 9, cycling. `Note.track` is the instrument's index in `pm.instruments`.
    """
    notes: list[Note] = []
    dropped = 0
    for index, instrument in enumerate(pm.instruments):
        channel = DRUM_CHANNEL if instrument.is_drum else PITCHED_CHANNELS[index % len(PITCHED_CHANNELS)]
        for source in instrument.notes:
            start, end = int(pm.time_to_tick(source.start)), int(pm.time_to_tick(source.end))
            if end <= start:
                dropped += 1
                continue
            notes.append(Note(int(source.pitch), int(source.velocity), start, end, channel, instrument.program, index))

    score = Score(
        ticks_per_quarter=pm.resolution,
        notes=sorted(notes, key=lambda note: (note.start_tick, note.track, note.channel, note.pitch, note.end_tick)),
        tempos=_pretty_midi_tempos(pm),
        time_signatures=[
            TimeSignature(int(pm.time_to_tick(change.time)), change.numerator, change.denominator)
            for change in pm.time_signature_changes
        ],
        key_signatures=[
            _key_signature(int(pm.time_to_tick(change.time)), change.key_number) for change in pm.key_signature_changes
        ],
    )
    if dropped:
        score.warnings.append(f"dropped {_count_of(dropped, 'note')} of zero length")
    return score


def _pretty_midi_tempos(pm: pretty_midi.PrettyMIDI) -> list[TempoChange]:
    times, bpms = pm.get_tempo_changes()
    return [TempoChange(int(pm.time_to_tick(seconds)), round(60_000_000 / bpm)) for seconds, bpm in zip(times, bpms)]


def _key_signature(tick: int, key_number: int) -> KeySignature:
    """Convert a pretty_midi key number (0-11 major keys from C, 12-23 minor keys from C) to sharps or flats."""
    minor = key_number >= 12
    # A minor key shares its signature with the major key three semitones up.
    major_tonic = (key_number + 3) % 12 if minor else key_number % 12
    # Each step around the circle of fifths (7 semitones) adds one sharp.
    sharps = (major_tonic * 7) % 12
    return KeySignature(tick, sharps - 12 if sharps > 6 else sharps, minor)
