"""Containers for the contents of a MIDI file once read: notes, tempo map and meter.

Times are kept in ticks of the source file, so quantizing onto a grid of quarter
notes needs no tempo. `Score.tick_to_seconds` applies the tempo map when seconds
are needed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from musicgen.constants import DEFAULT_TIME_SIGNATURE, DEFAULT_US_PER_QUARTER, DRUM_CHANNEL


@dataclass(frozen=True)
class Note:
    """One sounding note; `end_tick` is exclusive and always greater than `start_tick`."""

    pitch: int  # MIDI key number, 0..127
    velocity: int  # 1..127
    start_tick: int
    end_tick: int
    channel: int = 0  # 0..15; 9 is the General MIDI drum channel
    program: int = 0  # General MIDI program in effect on the channel, 0..127
    track: int = 0  # index of the track chunk the note came from

    @property
    def is_drum(self) -> bool:
        return self.channel == DRUM_CHANNEL


@dataclass(frozen=True)
class TempoChange:
    tick: int
    us_per_quarter: int  # microseconds per quarter note

    @property
    def bpm(self) -> float:
        return 60_000_000 / self.us_per_quarter


@dataclass(frozen=True)
class TimeSignature:
    tick: int
    numerator: int
    denominator: int  # a power of two: 1, 2, 4, 8, ...


@dataclass(frozen=True)
class KeySignature:
    tick: int
    sharps_flats: int  # -7..7: a negative value counts flats, a positive value counts sharps
    minor: bool = False


@dataclass
class Score:
    """Notes of one MIDI file with the tempo map and time signatures of all its tracks."""

    ticks_per_quarter: int
    notes: list[Note] = field(default_factory=list)
    tempos: list[TempoChange] = field(default_factory=list)
    time_signatures: list[TimeSignature] = field(default_factory=list)
    # Messages about things the reader repaired or ignored, one short line each.
    warnings: list[str] = field(default_factory=list)
    key_signatures: list[KeySignature] = field(default_factory=list)

    @property
    def pitched_notes(self) -> list[Note]:
        return [note for note in self.notes if not note.is_drum]

    @property
    def end_tick(self) -> int:
        return max((note.end_tick for note in self.notes), default=0)

    def first_tempo(self) -> TempoChange:
        return self.tempos[0] if self.tempos else TempoChange(0, DEFAULT_US_PER_QUARTER)

    def first_time_signature(self) -> TimeSignature:
        if self.time_signatures:
            return self.time_signatures[0]
        return TimeSignature(0, *DEFAULT_TIME_SIGNATURE)

    def meter_map(self) -> list[TimeSignature]:
        """Return the time signatures in tick order, starting at tick 0 (4/4 until the first one)."""
        signatures = sorted(self.time_signatures, key=lambda signature: signature.tick)
        if not signatures or signatures[0].tick > 0:
            signatures.insert(0, TimeSignature(0, *DEFAULT_TIME_SIGNATURE))
        return signatures

    def main_time_signature(self) -> TimeSignature:
        """Return the time signature in force for the most ticks up to the last note's end.

        A piece that opens with a pickup bar often carries a short signature (1/4, 1/8)
        for that bar alone. Such a signature covers few ticks, so the meter the piece is
        in wins.
        """
        signatures = self.meter_map()
        ends = [signature.tick for signature in signatures[1:]] + [max(self.end_tick, signatures[-1].tick + 1)]
        spans: dict[tuple[int, int], int] = {}
        for signature, end in zip(signatures, ends):
            meter = (signature.numerator, signature.denominator)
            spans[meter] = spans.get(meter, 0) + max(0, end - signature.tick)
        numerator, denominator = max(spans, key=spans.get)
        return TimeSignature(0, numerator, denominator)

    def pickup_signature(self) -> TimeSignature | None:
        """Return the signature of an opening pickup bar, else None.

        A pickup is a first signature that lasts exactly one of its own bars, shorter than a
        bar of the main meter, such as 1/4 before 4/4.
        """
        signatures = self.meter_map()
        if len(signatures) < 2:
            return None
        first, main = signatures[0], self.main_time_signature()
        first_bar = self.ticks_per_quarter * 4 * first.numerator / first.denominator
        main_bar = self.ticks_per_quarter * 4 * main.numerator / main.denominator
        return first if round(first_bar) == signatures[1].tick and first_bar < main_bar else None

    def bar_end_tick(self, bars: int) -> int:
        """Return the tick where bar `bars` ends, counting bars through the time signatures.

        A pickup bar (see `pickup_signature`) is not counted, so `bar_end_tick(2)` is the
        end of the pickup and two full bars.
        """
        signatures = self.meter_map()
        has_pickup = self.pickup_signature() is not None
        tick, counted, index = 0.0, 0, 0
        while counted < bars:
            while index + 1 < len(signatures) and signatures[index + 1].tick <= tick:
                index += 1
            signature = signatures[index]
            end = tick + self.ticks_per_quarter * 4 * signature.numerator / signature.denominator
            if index + 1 < len(signatures):
                end = min(end, signatures[index + 1].tick)  # a new signature cuts the bar short
            if tick > 0 or not has_pickup:
                counted += 1
            tick = end
        return round(tick)

    def tick_to_seconds(self, tick: int) -> float:
        """Convert a tick to seconds through the tempo map (120 BPM before the first change)."""
        tempos = self.tempos or [TempoChange(0, DEFAULT_US_PER_QUARTER)]
        if tempos[0].tick > 0:
            tempos = [TempoChange(0, DEFAULT_US_PER_QUARTER), *tempos]
        ticks = [tempo.tick for tempo in tempos]
        index = bisect.bisect_right(ticks, tick) - 1
        seconds = 0.0
        for previous, current in zip(tempos[:index], tempos[1 : index + 1]):
            seconds += (current.tick - previous.tick) * previous.us_per_quarter / 1e6
        active = tempos[index]
        seconds += (tick - active.tick) * active.us_per_quarter / 1e6
        return seconds / self.ticks_per_quarter
