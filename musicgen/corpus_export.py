"""Export the bundled training corpus from music21's own corpus to MIDI files.

`export_corpus` writes three folders of Standard MIDI Files at 480 ticks per quarter note:

* ``bach_melodies/``: the soprano line of every Bach chorale, one track on channel 0.
* ``bach_chorales/``: the same chorales with soprano, alto, tenor and bass, one track and
  one channel (0..3) per part. Tempo and time signatures sit in the first (soprano) track.
* ``oneills_1850/``: every tune of O'Neill's "Music of Ireland" (1850 tunes) from the
  abc files in music21's ``oneills1850`` folder, one file per tune, named from the tune's
  number in the book (see `read_book_numbers`) and a slug of its title.

Which works count as "every Bach chorale": each MusicXML score (``.mxl`` or ``.xml``) in
music21's ``bach`` corpus folder that has exactly one part each named Soprano, Alto, Tenor
and Bass (judged by the first word of the part name). The instrumental parts that some
cantata chorales add (horns, trumpets, continuo) are left out. This rule keeps every
chorale that ``music21.corpus.chorales.Iterator`` lists except BWV 27.6, and also the
chorales that the iterator's Riemenschneider list lacks, such as several Christmas
Oratorio settings. It skips the keyboard prelude BWV 846, the five-voice movements with
two soprano parts (BWV 27.6 and 227.3) and the Roman-numeral analyses in
``bach/choraleAnalyses``. The three Humdrum ``.krn`` files are skipped because each
duplicates a MusicXML file with the same BWV number.

Melodies are deduplicated up to transposition: two works whose melody (the soprano line,
or the tune) has the same sequence of (interval to the previous note, duration) count as
one, and only the first in sorted order is written. A Bach chorale whose soprano line
repeats an earlier one is left out of both Bach folders, so one hymn tune cannot land in
both a training and a validation split.

O'Neill's abc files overlap: several tune numbers come in two transcriptions by different
people. A tune whose number matches an earlier tune and whose pitch intervals are close to
it (see `ALTERNATE_TRANSCRIPTION_MIN_SHARED`) is an alternate transcription and is
skipped as well. Two tunes that share a number but differ in melody are both written,
because some files number a tune wrongly.

Repeats, first and second endings and written D.C./D.S. directions are expanded with
music21's `Stream.expandRepeats`, as music21's own MIDI writer does. A score whose
repeats music21 cannot expand is written as notated and listed under ``warnings``.
Times are otherwise taken from music21 as they are, so a pickup bar starts at time 0. The
pickup bar gets its own short time signature (see `add_pickup_signature`), so that bar
lines stay where the score has them. Grace notes (no duration) are dropped. A tie joins
notes of the same pitch only, because some abc transcriptions write ``-`` between two
different pitches. Onsets and ends that are not whole ticks (only nine-note tuplets in a
few O'Neill tunes) are rounded to the nearest tick and listed under ``rounded_to_ticks``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from fractions import Fraction
from pathlib import Path
from typing import Any

import mido
from music21 import chord, corpus, exceptions21, meter, note, stream, tempo
from tqdm import tqdm

from musicgen.constants import (
    DEFAULT_PROGRAM,
    DEFAULT_TEMPO_BPM,
    DEFAULT_VELOCITY,
    DRUM_CHANNEL,
    WRITE_TICKS_PER_QUARTER,
)

logger = logging.getLogger(__name__)

BACH_MELODIES = "bach_melodies"
BACH_CHORALES = "bach_chorales"
ONEILLS_1850 = "oneills_1850"
EXPORT_FOLDERS = (BACH_MELODIES, BACH_CHORALES, ONEILLS_1850)

SATB_VOICES = ("soprano", "alto", "tenor", "bass")
BACH_SCORE_SUFFIXES = (".mxl", ".xml")

# Two transcriptions of one tune share most of their phrases even when one writes repeats
# out and the other uses repeat signs, so they are compared by the fraction of shared runs
# of `PHRASE_INTERVALS` pitch intervals (see `shared_phrase_fraction`). Measured on the
# repeat-expanded tunes with music21 10.5.1, the 170 pairs that share a tune number and a
# title score 0.46..1.0. The two pairs that share only an X: number (800 and 1781) score
# 0.00 and 0.03, and 3000 random pairs of different tunes scored at most 0.38.
PHRASE_INTERVALS = 6
ALTERNATE_TRANSCRIPTION_MIN_SHARED = 0.25

MAX_SLUG_LENGTH = 60


@dataclasses.dataclass(frozen=True)
class NoteSpan:
    """One note with onset and end in quarter notes from the start of the piece."""

    pitch: int  # MIDI key number
    start: Fraction
    end: Fraction


@dataclasses.dataclass(frozen=True)
class PartNotes:
    """Notes of one part, sorted by onset, with the part's name for the MIDI track name."""

    name: str
    notes: tuple[NoteSpan, ...]


@dataclasses.dataclass(frozen=True)
class Work:
    """One piece read from the corpus, in plain data that can cross process boundaries.

    `parts[0]` is the melody: the soprano of a chorale or the single line of a tune.
    Offsets of `tempos` and `time_signatures` are in quarter notes.
    """

    source: str  # corpus path such as "bach/bwv1.6.mxl" or "oneills1850/0001-0050.abc X:12"
    stem: str  # output file name without ".mid"
    title: str
    tune_number: int | None  # O'Neill's tune number, None for Bach
    parts: tuple[PartNotes, ...]
    tempos: tuple[tuple[Fraction, float], ...]  # (offset, quarter notes per minute)
    time_signatures: tuple[tuple[Fraction, int, int], ...]  # (offset, numerator, denominator)
    messages: tuple[str, ...] = ()  # what reading changed or dropped, logged by the export


@dataclasses.dataclass
class SourceResult:
    """Works read from one corpus file, or the reason the file gave none."""

    source: str
    works: list[Work] = dataclasses.field(default_factory=list)
    excluded_reason: str | None = None  # set when the file is valid but not a chorale
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (source, reason)


# ---------------------------------------------------------------------------
# Listing the corpus


def natural_sort_key(name: str) -> tuple[Any, ...]:
    """Return a key that orders "bwv2.6" before "bwv10.7" by comparing digit runs as numbers."""
    return tuple(int(token) if token.isdigit() else token for token in re.split(r"(\d+)", name))


def list_bach_sources() -> list[Path]:
    """List the MusicXML scores in music21's ``bach`` corpus folder, in natural name order."""
    paths = corpus.getComposer("bach", fileExtensions=("mxl", "xml"))
    scores = [Path(path) for path in paths if Path(path).suffix in BACH_SCORE_SUFFIXES]
    return sorted(scores, key=lambda path: natural_sort_key(path.name))


def list_oneills_sources() -> list[Path]:
    """List the abc files in music21's ``oneills1850`` corpus folder, sorted by name."""
    paths = corpus.getPaths(fileExtensions=("abc",))
    tune_files = [Path(path) for path in paths if Path(path).parent.name == "oneills1850"]
    return sorted(tune_files, key=lambda path: path.name)


def corpus_name(path: Path) -> str:
    """Return the path relative to music21's corpus root, e.g. "bach/bwv1.6.mxl"."""
    return f"{path.parent.name}/{path.name}"


# ---------------------------------------------------------------------------
# Reading notes out of music21 streams


def collect_sounding_notes(part: stream.Stream) -> list[tuple[tuple[int, ...], Fraction, Fraction, str | None]]:
    """List (pitches, onset, duration, tie type) of every note and chord with a duration.

    Onsets and durations are in quarter notes. Grace notes have no duration and are left out.
    """
    events = []
    for element in part.flatten().notes:
        duration = Fraction(element.quarterLength)
        if duration <= 0:
            continue
        if isinstance(element, chord.Chord):
            pitches = tuple(sorted(pitch.midi for pitch in element.pitches))
        elif isinstance(element, note.Note):
            pitches = (element.pitch.midi,)
        else:
            continue
        tie_type = element.tie.type if element.tie is not None else None
        events.append((pitches, Fraction(element.offset), duration, tie_type))
    return events


def merge_ties(
    events: Iterable[tuple[tuple[int, ...], Fraction, Fraction, str | None]],
) -> list[NoteSpan]:
    """Join tied notes into one `NoteSpan` when the pitch and the contact point match.

    A tie stop or continue on a different pitch, or after a gap, starts a new note, so a
    misused abc ``-`` between two pitches keeps both notes.
    """
    spans: list[NoteSpan] = []
    open_ties: dict[int, int] = {}  # pitch -> index in spans of a note whose tie is open
    for pitches, start, duration, tie_type in events:
        end = start + duration
        for pitch in pitches:
            index = open_ties.pop(pitch, None)
            continues_tie = tie_type in ("stop", "continue") and index is not None
            if continues_tie and spans[index].end == start:
                spans[index] = NoteSpan(pitch, spans[index].start, end)
            else:
                index = len(spans)
                spans.append(NoteSpan(pitch, start, end))
            if tie_type in ("start", "continue"):
                open_ties[pitch] = index
    return sorted(spans, key=lambda span: (span.start, span.pitch))


def remove_same_pitch_overlaps(spans: Sequence[NoteSpan]) -> list[NoteSpan]:
    """Cut a note short where the same pitch starts again before it ends.

    A MIDI channel cannot sound one key twice, so the overlap would be lost in playback.
    Notes must be sorted by onset. A note cut to nothing is dropped.
    """
    cleaned: list[NoteSpan] = []
    last_index_by_pitch: dict[int, int] = {}
    for span in spans:
        index = last_index_by_pitch.get(span.pitch)
        if index is not None and cleaned[index].end > span.start:
            previous = cleaned[index]
            cleaned[index] = NoteSpan(previous.pitch, previous.start, span.start)
        last_index_by_pitch[span.pitch] = len(cleaned)
        cleaned.append(span)
    return [span for span in cleaned if span.end > span.start]


def make_monophonic(spans: Sequence[NoteSpan]) -> list[NoteSpan]:
    """Reduce a line to one note at a time: the highest of notes that start together wins,
    and a note that still sounds when the next one starts is cut at that onset."""
    highest_by_onset: dict[Fraction, NoteSpan] = {}
    for span in spans:
        current = highest_by_onset.get(span.start)
        if current is None or span.pitch > current.pitch:
            highest_by_onset[span.start] = span
    ordered = [highest_by_onset[onset] for onset in sorted(highest_by_onset)]
    melody = []
    for span, following in zip(ordered, ordered[1:] + [None]):
        end = span.end if following is None else min(span.end, following.start)
        melody.append(NoteSpan(span.pitch, span.start, end))
    return melody


def read_part_notes(part: stream.Stream, name: str, *, monophonic: bool) -> PartNotes:
    """Read one part's sounding notes, with ties joined and overlaps of one pitch removed."""
    spans = merge_ties(collect_sounding_notes(part))
    spans = make_monophonic(spans) if monophonic else remove_same_pitch_overlaps(spans)
    return PartNotes(name, tuple(spans))


def iter_part_elements(part: stream.Stream, element_class: type) -> Iterator[tuple[Fraction, Any]]:
    """Yield (offset in quarter notes from the part's start, element) for elements of one class
    that sit in the part's measures or directly in the part.

    Offsets are looked up per measure because music21's abc reader can put one
    TimeSignature object into two measures, and a flattened stream then lists it only once.
    """
    for measure in part.getElementsByClass(stream.Measure):
        measure_offset = Fraction(measure.getOffsetBySite(part))
        for element in measure.getElementsByClass(element_class):
            yield measure_offset + Fraction(element.getOffsetBySite(measure)), element
    for element in part.getElementsByClass(element_class):
        yield Fraction(element.getOffsetBySite(part)), element


def read_tempos(score: stream.Score) -> tuple[tuple[Fraction, float], ...]:
    """List (offset in quarter notes, quarter notes per minute) of the score's metronome marks.

    Marks with only a text such as "Slow" have no written number and are skipped. The first
    mark at each offset wins, because every part of a score may repeat the same mark.
    """
    tempos: dict[Fraction, float] = {}
    for part in score.parts:
        for offset, mark in iter_part_elements(part, tempo.MetronomeMark):
            if mark.number is None or mark.numberImplicit:
                continue
            bpm = mark.getQuarterBPM()
            if bpm is not None and bpm > 0 and offset not in tempos:
                tempos[offset] = float(bpm)
    return tuple(sorted(tempos.items()))


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def read_time_signatures(part: stream.Stream) -> tuple[tuple[tuple[Fraction, int, int], ...], list[str]]:
    """List (offset in quarter notes, numerator, denominator) of the part's time signatures.

    A signature that repeats the one before it is left out. A MIDI time signature needs a
    power-of-two denominator, so a signature such as 1/6 (which music21's abc reader makes
    for some short bars) is skipped, with one message per skip in the second return value.
    """
    signatures: list[tuple[Fraction, int, int]] = []
    messages = []
    for offset, signature in sorted(iter_part_elements(part, meter.TimeSignature), key=lambda item: item[0]):
        entry = (offset, signature.numerator, signature.denominator)
        if not is_power_of_two(signature.denominator):
            messages.append(f"skipped time signature {signature.ratioString} at quarter {offset}")
            continue
        if signatures and signatures[-1][0] == offset:
            signatures[-1] = entry
        elif not signatures or signatures[-1][1:] != entry[1:]:
            signatures.append(entry)
    return tuple(add_pickup_signature(part, signatures)), messages


def pickup_length(part: stream.Stream) -> tuple[Fraction, meter.TimeSignature] | None:
    """Return the length in quarter notes of the part's opening pickup bar and the bar's
    time signature, or None when the first bar is complete."""
    measures = part.getElementsByClass(stream.Measure)
    if not measures:
        return None
    first = measures[0]
    signature = first.timeSignature
    padding = Fraction(first.paddingLeft)
    if signature is None or padding <= 0:
        return None
    length = Fraction(signature.barDuration.quarterLength) - padding
    return (length, signature) if length > 0 else None


def add_pickup_signature(
    part: stream.Stream, signatures: list[tuple[Fraction, int, int]]
) -> list[tuple[Fraction, int, int]]:
    """Give an opening pickup bar its own time signature, e.g. 1/4 before a 4/4 that then
    starts one quarter later, so MIDI bar lines fall on the score's bar lines.

    music21's abc reader does the same for short bars inside a tune. A pickup that no
    power-of-two denominator up to 64 can express (a triplet pickup) is left as it is.
    """
    pickup = pickup_length(part)
    if pickup is None or not signatures or signatures[0][0] != 0:
        return signatures
    length, signature = pickup
    denominator = signature.denominator
    while (length * denominator / 4).denominator != 1 and denominator < 64:
        denominator *= 2
    numerator = length * denominator / 4
    if numerator.denominator != 1:
        return signatures
    pickup_signature = (Fraction(0), int(numerator), denominator)
    later = [entry for entry in signatures[1:] if entry[0] >= length]
    if later and later[0][0] == length:
        return [pickup_signature, *later]
    return [pickup_signature, (length, signatures[0][1], signatures[0][2]), *later]


def expand_repeats(score: stream.Score) -> tuple[stream.Score, list[str]]:
    """Return the score with its repeats written out, or the score as it was and a message
    when music21 cannot expand them (for example a repeat sign with no matching start)."""
    if not any(part.hasMeasures() for part in score.parts):
        return score, []
    try:
        return score.expandRepeats(), []
    except exceptions21.Music21Exception as error:
        return score, [f"repeats not expanded ({type(error).__name__}: {error}), written as notated"]


# ---------------------------------------------------------------------------
# Bach chorales


def find_satb_parts(score: stream.Score) -> dict[str, stream.Part] | str:
    """Map soprano, alto, tenor and bass to their parts, or return why the score is not a
    four-part chorale. A part's voice is the first word of its name, case ignored."""
    parts_by_voice: dict[str, list[stream.Part]] = {voice: [] for voice in SATB_VOICES}
    for part in score.parts:
        words = (part.partName or "").split()
        voice = words[0].lower() if words else ""
        if voice in parts_by_voice:
            parts_by_voice[voice].append(part)
    counts = {voice: len(parts) for voice, parts in parts_by_voice.items()}
    if any(count != 1 for count in counts.values()):
        names = [part.partName for part in score.parts]
        return f"not a four-part chorale: part names {names}"
    return {voice: parts[0] for voice, parts in parts_by_voice.items()}


def read_bach_source(path: Path) -> SourceResult:
    """Parse one Bach score and read its four vocal parts, or record why it was left out."""
    source = corpus_name(path)
    result = SourceResult(source)
    score = corpus.parse(path, forceSource=True)
    if not isinstance(score, stream.Score):
        result.excluded_reason = f"not a single score: music21 returned {type(score).__name__}"
        return result
    satb = find_satb_parts(score)
    if isinstance(satb, str):
        result.excluded_reason = satb
        return result
    score, messages = expand_repeats(score)
    satb = find_satb_parts(score)  # the expanded score contains copies of the parts
    if isinstance(satb, str):
        result.failures.append((source, f"after expanding repeats, {satb}"))
        return result

    parts = tuple(
        read_part_notes(satb[voice], voice.capitalize(), monophonic=voice == "soprano")
        for voice in SATB_VOICES
    )
    if not parts[0].notes:
        result.failures.append((source, "the soprano part has no notes"))
        return result
    title = score.metadata.title if score.metadata and score.metadata.title else path.stem
    time_signatures, signature_messages = read_time_signatures(satb["soprano"])
    messages += signature_messages
    result.works.append(
        Work(
            source=source,
            stem=path.stem,
            title=title,
            tune_number=None,
            parts=parts,
            tempos=read_tempos(score),
            time_signatures=time_signatures,
            messages=tuple(messages),
        )
    )
    return result


# ---------------------------------------------------------------------------
# O'Neill's tunes


def slugify(text: str) -> str:
    """Turn a title into lower-case ASCII words joined by "-", e.g. "O'Neill's Fancy" -> "oneills-fancy"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = ascii_text.lower().replace("'", "")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    slug = slug[:MAX_SLUG_LENGTH].rstrip("-")
    return slug or "untitled"


def parse_tune_number(number: Any) -> int | None:
    """Return the abc X: field as an int, or None when it is missing or not a whole number."""
    text = str(number).strip() if number is not None else ""
    return int(text) if text.isdigit() else None


def read_book_numbers(path: Path) -> dict[str, list[int | None]]:
    """Map each X: value of an abc file to the numbers at the end of the B: fields of the
    tunes with that X:, in file order. "B: O'Neill's 700" gives 700, and no B: field gives None.

    The B: field is read from the file because music21 10.5 does not keep it. It is more
    reliable than X:, which in music21's copy reads 800 for tune 700, 0 for tune 1646 and
    1781 for tune 1780. The map is keyed by X: because music21 returns an abc file's tunes
    sorted by X:, not in file order.
    """
    text = path.read_text(encoding="latin-1")
    numbers: dict[str, list[int | None]] = {}
    for tune in re.split(r"(?m)^X:", text)[1:]:
        reference = tune.split("\n", 1)[0].strip()
        match = re.search(r"(?m)^B:.*?(\d+)\D*$", tune)
        numbers.setdefault(reference, []).append(int(match.group(1)) if match else None)
    return numbers


def ascii_title(text: str) -> str:
    """Return the title with accents removed and other non-ASCII characters dropped."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").strip()


def read_oneills_tune(score: stream.Score, tune_source: str, position: int, book_number: int | None) -> Work | str:
    """Read one tune of an abc file, or return why it cannot be written.

    `tune_source` names the tune in logs and in the report, e.g. "oneills1850/0001-0050.abc X:12".
    The file name uses `book_number` (from the B: field), else the X: number, else
    `position`, the tune's index (from 1) in music21's list of the file's tunes.
    """
    metadata = score.metadata
    tune_number = book_number
    if tune_number is None and metadata is not None:
        tune_number = parse_tune_number(metadata.number)
    title = ascii_title(metadata.title) if metadata and metadata.title else ""
    if len(score.parts) != 1:
        return f"expected one part, found {len(score.parts)}"
    score, messages = expand_repeats(score)
    part = score.parts[0]

    melody = read_part_notes(part, title or "Tune", monophonic=True)
    if not melody.notes:
        return "the tune has no notes"
    time_signatures, signature_messages = read_time_signatures(part)
    messages += signature_messages
    number_text = f"{tune_number:04d}" if tune_number is not None else f"x{position:03d}"
    return Work(
        source=tune_source,
        stem=f"{number_text}-{slugify(title)}",
        title=title,
        tune_number=tune_number,
        parts=(melody,),
        tempos=read_tempos(score),
        time_signatures=time_signatures,
        messages=tuple(messages),
    )


def read_oneills_source(path: Path) -> SourceResult:
    """Parse one abc file of O'Neill's collection and read every tune in it."""
    source = corpus_name(path)
    result = SourceResult(source)
    parsed = corpus.parse(path, forceSource=True)
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    book_numbers = read_book_numbers(path)
    for position, score in enumerate(scores, start=1):
        reference = str(score.metadata.number).strip() if score.metadata and score.metadata.number else ""
        tune_source = f"{source} X:{reference}" if reference else f"{source} tune {position}"
        numbers_left = book_numbers.get(reference, [])
        book_number = numbers_left.pop(0) if numbers_left else None
        work = read_oneills_tune(score, tune_source, position, book_number)
        if isinstance(work, str):
            result.failures.append((tune_source, work))
        else:
            result.works.append(work)
    return result


def read_source(kind: str, path: Path) -> SourceResult:
    """Read one corpus file in a worker process and turn any parse error into a failure.

    music21's parsers raise many exception types on malformed input, so this catches
    Exception: one broken file must not stop the export of the others.
    """
    reader = read_bach_source if kind == "bach" else read_oneills_source
    try:
        return reader(path)
    except Exception as error:  # noqa: BLE001 - reported per file, see docstring
        source = corpus_name(path)
        return SourceResult(source, failures=[(source, f"{type(error).__name__}: {error}")])


def read_sources(
    tasks: Sequence[tuple[str, Path]], *, workers: int, show_progress: bool
) -> list[SourceResult]:
    """Read the corpus files, in parallel when `workers` > 1, in the order of `tasks`."""
    results: list[SourceResult | None] = [None] * len(tasks)
    progress = tqdm(total=len(tasks), unit="file", desc="Reading music21 corpus", disable=not show_progress)
    with progress:
        if workers <= 1:
            for index, (kind, path) in enumerate(tasks):
                results[index] = read_source(kind, path)
                progress.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as executor:
                futures = {executor.submit(read_source, kind, path): index for index, (kind, path) in enumerate(tasks)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    progress.update(1)
    return [result for result in results if result is not None]


# ---------------------------------------------------------------------------
# Deduplication


def melody_key(notes: Sequence[NoteSpan]) -> tuple[tuple[int | None, Fraction], ...]:
    """Return the melody's (interval in semitones to the previous note, duration in quarter
    notes) sequence, which is the same for two melodies that differ only by transposition.
    The first note has no previous note, so its interval is None."""
    key = []
    previous_pitch = None
    for span in notes:
        interval = None if previous_pitch is None else span.pitch - previous_pitch
        key.append((interval, span.end - span.start))
        previous_pitch = span.pitch
    return tuple(key)


def interval_phrases(notes: Sequence[NoteSpan]) -> set[tuple[int, ...]]:
    """Return the set of runs of `PHRASE_INTERVALS` consecutive pitch intervals (semitones)."""
    intervals = [after.pitch - before.pitch for before, after in zip(notes, notes[1:])]
    count = len(intervals) - PHRASE_INTERVALS + 1
    return {tuple(intervals[index : index + PHRASE_INTERVALS]) for index in range(count)}


def shared_phrase_fraction(first: Sequence[NoteSpan], second: Sequence[NoteSpan]) -> float:
    """Return the fraction (0..1) of the shorter melody's interval phrases that the other
    melody also contains. It ignores rhythm, transposition and how often a phrase repeats."""
    first_phrases = interval_phrases(first)
    second_phrases = interval_phrases(second)
    smaller = min(len(first_phrases), len(second_phrases))
    if smaller == 0:
        return 0.0
    return len(first_phrases & second_phrases) / smaller


def drop_duplicate_melodies(works: Sequence[Work]) -> tuple[list[Work], list[dict[str, str]]]:
    """Keep the first work of each melody up to transposition, in the given order.

    Returns the kept works and one {"skipped", "duplicate_of"} entry per dropped work,
    both given as corpus sources.
    """
    kept: list[Work] = []
    skipped: list[dict[str, str]] = []
    first_by_key: dict[tuple[Any, ...], Work] = {}
    for work in works:
        key = melody_key(work.parts[0].notes)
        original = first_by_key.get(key)
        if original is not None:
            skipped.append({"skipped": work.source, "duplicate_of": original.source})
            continue
        first_by_key[key] = work
        kept.append(work)
    return kept, skipped


def drop_alternate_transcriptions(works: Sequence[Work]) -> tuple[list[Work], list[dict[str, Any]]]:
    """Keep the first transcription of each O'Neill tune number, in the given order.

    A later work with the same tune number counts as another transcription of that tune
    only if `shared_phrase_fraction` reaches `ALTERNATE_TRANSCRIPTION_MIN_SHARED`.
    Otherwise it is a different tune under a wrongly repeated number, and it is kept.
    """
    kept: list[Work] = []
    skipped: list[dict[str, Any]] = []
    kept_by_number: dict[int, list[Work]] = {}
    for work in works:
        earlier = kept_by_number.get(work.tune_number, []) if work.tune_number is not None else []
        match = None
        for candidate in earlier:
            shared = shared_phrase_fraction(candidate.parts[0].notes, work.parts[0].notes)
            if shared >= ALTERNATE_TRANSCRIPTION_MIN_SHARED:
                match = (candidate, shared)
                break
        if match is not None:
            skipped.append(
                {"skipped": work.source, "duplicate_of": match[0].source, "shared_phrases": round(match[1], 2)}
            )
            continue
        kept.append(work)
        if work.tune_number is not None:
            kept_by_number.setdefault(work.tune_number, []).append(work)
    return kept, skipped


def make_stems_unique(works: Sequence[Work]) -> list[Work]:
    """Append "-2", "-3", ... to a stem that an earlier work already uses."""
    used: set[str] = set()
    unique = []
    for work in works:
        stem = work.stem
        suffix = 2
        while stem in used:
            stem = f"{work.stem}-{suffix}"
            suffix += 1
        if stem != work.stem:
            logger.warning("%s: file name %s.mid is taken, writing %s.mid", work.source, work.stem, stem)
            work = dataclasses.replace(work, stem=stem)
        used.add(stem)
        unique.append(work)
    return unique


# ---------------------------------------------------------------------------
# Writing MIDI files


def quarters_to_ticks(quarters: Fraction, rounded: list[Fraction]) -> int:
    """Convert quarter notes to ticks at `WRITE_TICKS_PER_QUARTER`, rounding to the
    nearest tick. A value that was not a whole number of ticks is appended to `rounded`."""
    ticks = quarters * WRITE_TICKS_PER_QUARTER
    if ticks.denominator != 1:
        rounded.append(quarters)
    return round(ticks)


def earliest_onset(work: Work) -> Fraction:
    """Return the earliest note onset in quarter notes, or 0 if no note starts before 0."""
    onsets = [span.start for part in work.parts for span in part.notes]
    return min([Fraction(0), *onsets])


def meta_events(work: Work, shift: Fraction, rounded: list[Fraction]) -> list[tuple[int, int, mido.MetaMessage]]:
    """Build (tick, sort order, message) for the tempo map and time signatures.

    A piece without a metronome mark gets `DEFAULT_TEMPO_BPM` at tick 0.
    """
    events = []
    tempos = work.tempos or ((Fraction(0), DEFAULT_TEMPO_BPM),)
    for offset, bpm in tempos:
        tick = max(0, quarters_to_ticks(offset + shift, rounded))
        events.append((tick, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
    for offset, numerator, denominator in work.time_signatures:
        tick = max(0, quarters_to_ticks(offset + shift, rounded))
        message = mido.MetaMessage(
            "time_signature",
            numerator=numerator,
            denominator=denominator,
            clocks_per_click=96 // denominator if denominator <= 96 else 1,
            notated_32nd_notes_per_beat=8,
        )
        events.append((tick, 1, message))
    return events


def note_events(
    part: PartNotes, channel: int, shift: Fraction, rounded: list[Fraction]
) -> list[tuple[int, int, mido.Message]]:
    """Build (tick, sort order, message) note-on and note-off pairs for one part.

    Note-offs sort before note-ons at the same tick, so a repeated key is released first.
    """
    events = []
    for span in part.notes:
        start = quarters_to_ticks(span.start + shift, rounded)
        end = quarters_to_ticks(span.end + shift, rounded)
        if end <= start:
            continue
        events.append((start, 3, mido.Message("note_on", channel=channel, note=span.pitch, velocity=DEFAULT_VELOCITY)))
        events.append((end, 2, mido.Message("note_off", channel=channel, note=span.pitch, velocity=0)))
    return events


def build_track(
    name: str, channel: int, events: list[tuple[int, int, Any]]
) -> mido.MidiTrack:
    """Build a track with its name and program change at tick 0 and the events in delta time."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    track.append(mido.Message("program_change", channel=channel, program=DEFAULT_PROGRAM, time=0))
    previous_tick = 0
    for tick, _order, message in sorted(events, key=lambda event: (event[0], event[1])):
        track.append(message.copy(time=tick - previous_tick))
        previous_tick = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def build_midi_file(work: Work, parts: Sequence[PartNotes]) -> tuple[mido.MidiFile, int]:
    """Build a MIDI file of `parts`, one track and channel each, with the work's tempo map
    and time signatures in the first track. Type 0 for one part, type 1 otherwise.

    Returns the file and how many onsets or ends had to be rounded to a tick.
    """
    channels = [channel for channel in range(16) if channel != DRUM_CHANNEL][: len(parts)]
    shift = -earliest_onset(work)
    rounded: list[Fraction] = []
    midi_file = mido.MidiFile(type=0 if len(parts) == 1 else 1, ticks_per_beat=WRITE_TICKS_PER_QUARTER)
    for index, (part, channel) in enumerate(zip(parts, channels)):
        events: list[tuple[int, int, Any]] = note_events(part, channel, shift, rounded)
        if index == 0:
            events += meta_events(work, shift, rounded)
        midi_file.tracks.append(build_track(ascii_title(part.name) or "Melody", channel, events))
    return midi_file, len(rounded)


def write_work(work: Work, parts: Sequence[PartNotes], path: Path) -> int:
    """Write `parts` of the work to `path` and return how many values were rounded to a tick."""
    midi_file, rounded_count = build_midi_file(work, parts)
    midi_file.save(path)
    return rounded_count


# ---------------------------------------------------------------------------
# Export


def check_output_folders(output_dir: Path, *, overwrite: bool) -> None:
    """Create the export folders and clear their .mid files if `overwrite` is True.

    Raises FileExistsError if a folder contains .mid files and `overwrite` is False.
    """
    for folder_name in EXPORT_FOLDERS:
        folder = output_dir / folder_name
        existing = sorted(folder.glob("*.mid")) if folder.is_dir() else []
        if existing and not overwrite:
            raise FileExistsError(
                f"{existing[0]} already exists ({len(existing)} .mid files in {folder}). "
                "Pass --overwrite (overwrite=True) to replace the exported files."
            )
        for path in existing:
            path.unlink()
        folder.mkdir(parents=True, exist_ok=True)


def sort_oneills_tunes(works: Iterable[Work]) -> list[Work]:
    """Order tunes by tune number, then by source file, keeping each file's tune order."""
    indexed = list(enumerate(works))
    indexed.sort(key=lambda item: (item[1].tune_number is None, item[1].tune_number or 0, item[0]))
    return [work for _index, work in indexed]


def write_folder(
    works: Sequence[Work], folder: Path, *, melody_only: bool, rounded_to_ticks: list[dict[str, Any]]
) -> tuple[int, int]:
    """Write each work to `folder` and return (files written, notes written)."""
    notes = 0
    for work in works:
        parts = work.parts[:1] if melody_only else work.parts
        rounded_count = write_work(work, parts, folder / f"{work.stem}.mid")
        notes += sum(len(part.notes) for part in parts)
        if rounded_count:
            rounded_to_ticks.append({"file": f"{folder.name}/{work.stem}.mid", "values": rounded_count})
            logger.warning("%s: rounded %d onsets or ends to whole ticks", work.source, rounded_count)
    return len(works), notes


def collect_results(results: Sequence[SourceResult], report: dict[str, Any]) -> list[Work]:
    """Gather the works of all results and log and record the exclusions and failures."""
    works: list[Work] = []
    for result in results:
        works.extend(result.works)
        for work in result.works:
            for message in work.messages:
                logger.warning("%s: %s", work.source, message)
                report["warnings"].append({"source": work.source, "message": message})
        if result.excluded_reason is not None:
            logger.info("%s: skipped, %s", result.source, result.excluded_reason)
            report["not_four_part"].append({"source": result.source, "reason": result.excluded_reason})
        for source, reason in result.failures:
            logger.error("%s: failed to read, %s", source, reason)
            report["failed"].append({"source": source, "reason": reason})
    return works


def export_corpus(
    output_dir: Path,
    *,
    overwrite: bool = False,
    show_progress: bool = True,
    workers: int | None = None,
    bach_sources: Sequence[Path] | None = None,
    oneills_sources: Sequence[Path] | None = None,
) -> dict[str, Any]:
    """Write the Bach melodies, Bach chorales and O'Neill tunes as MIDI files under `output_dir`.

    `workers` is the number of processes that parse the corpus (default: CPU count).
    `bach_sources` and `oneills_sources` default to every file that `list_bach_sources`
    and `list_oneills_sources` return. Pass a subset to export a sample.

    Raises FileExistsError, before parsing anything, when one of the three folders already
    contains .mid files and `overwrite` is False. With `overwrite` the old .mid files in those
    folders are deleted first, so each folder contains exactly this export.

    Returns a JSON-ready dict: "files" and "notes" per folder name, "duplicates_skipped"
    and "alternate_transcriptions_skipped" ({"skipped", "duplicate_of"} corpus sources),
    "not_four_part" and "failed" ({"source", "reason"}), "rounded_to_ticks" ({"file",
    "values"}), "warnings" ({"source", "message"}: repeats music21 could not expand and
    time signatures that MIDI cannot store) and "seconds" (wall-clock time of the export).
    """
    started = time.perf_counter()
    check_output_folders(output_dir, overwrite=overwrite)
    bach_paths = list(bach_sources) if bach_sources is not None else list_bach_sources()
    oneills_paths = list(oneills_sources) if oneills_sources is not None else list_oneills_sources()
    tasks = [("bach", path) for path in bach_paths] + [("oneills", path) for path in oneills_paths]
    worker_count = workers if workers is not None else (os.cpu_count() or 1)
    worker_count = max(1, min(worker_count, len(tasks)))
    results = read_sources(tasks, workers=worker_count, show_progress=show_progress)

    report: dict[str, Any] = {
        "files": {},
        "notes": {},
        "duplicates_skipped": [],
        "alternate_transcriptions_skipped": [],
        "not_four_part": [],
        "failed": [],
        "rounded_to_ticks": [],
        "warnings": [],
    }
    bach_works = collect_results(results[: len(bach_paths)], report)
    tune_works = collect_results(results[len(bach_paths) :], report)

    bach_works.sort(key=lambda work: natural_sort_key(work.stem))
    bach_works, bach_duplicates = drop_duplicate_melodies(bach_works)
    tune_works, alternates = drop_alternate_transcriptions(sort_oneills_tunes(tune_works))
    tune_works, tune_duplicates = drop_duplicate_melodies(tune_works)
    tune_works = make_stems_unique(tune_works)
    report["duplicates_skipped"] = bach_duplicates + tune_duplicates
    report["alternate_transcriptions_skipped"] = alternates
    for entry in report["duplicates_skipped"] + alternates:
        logger.info("%s: skipped, same melody as %s", entry["skipped"], entry["duplicate_of"])

    plan = [
        (BACH_MELODIES, bach_works, True),
        (BACH_CHORALES, bach_works, False),
        (ONEILLS_1850, tune_works, True),
    ]
    for folder_name, works, melody_only in plan:
        files, notes = write_folder(
            works, output_dir / folder_name, melody_only=melody_only, rounded_to_ticks=report["rounded_to_ticks"]
        )
        report["files"][folder_name] = files
        report["notes"][folder_name] = notes
    report["seconds"] = round(time.perf_counter() - started, 1)
    logger.info("exported %s files to %s in %.1f s", report["files"], output_dir, report["seconds"])
    return report
