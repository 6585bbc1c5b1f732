"""Summary of a MIDI folder as ingestion reads it: files used and skipped, notes, tokens, keys, duplicates."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from musicgen.data.corpus import reason_kind
from musicgen.data.ingest import FileRecord, IngestResult
from musicgen.notes import pitch_to_name
from musicgen.tokenizer import Tokenizer


@dataclass
class FolderSummary:
    folder: Path
    tokenizer: Tokenizer
    files: int = 0
    used: int = 0
    skipped: dict[str, list[FileRecord]] = field(default_factory=dict)  # by the reason's text before its first colon
    notes: int = 0  # pitched notes the reader found in the files used
    tokens: int = 0
    pitch_min: int | None = None
    pitch_max: int | None = None
    folded_notes: int = 0
    keys: Counter[str] = field(default_factory=Counter)
    byte_duplicates: int = 0  # files whose bytes equal those of an earlier file
    token_duplicates: int = 0  # files used whose tokens equal those of an earlier file
    repaired: list[FileRecord] = field(default_factory=list)  # files used that the reader had to repair

    @property
    def skipped_count(self) -> int:
        return sum(len(records) for records in self.skipped.values())


def summarize(folder: Path, result: IngestResult, tokenizer: Tokenizer) -> FolderSummary:
    """Collect the statistics of every file record of one folder."""
    summary = FolderSummary(folder, tokenizer, files=len(result.records))
    byte_hashes: Counter[str] = Counter()
    token_hashes: Counter[bytes] = Counter()
    for record in result.records:
        if record.sha256:
            byte_hashes[record.sha256] += 1
        if record.ids is None:
            summary.skipped.setdefault(reason_kind(record.reason or ""), []).append(record)
            continue
        _add_used(summary, record)
        token_hashes[hashlib.sha1(record.ids.tobytes()).digest()] += 1
    summary.byte_duplicates = sum(count - 1 for count in byte_hashes.values())
    summary.token_duplicates = sum(count - 1 for count in token_hashes.values())
    return summary


def _add_used(summary: FolderSummary, record: FileRecord) -> None:
    meta = record.meta
    summary.used += 1
    summary.notes += meta.get("source_notes", 0)
    summary.tokens += len(record.ids) if record.ids is not None else 0
    summary.folded_notes += meta.get("folded_notes", 0)
    low, high = meta.get("pitch_min"), meta.get("pitch_max")
    if low is not None:
        summary.pitch_min = low if summary.pitch_min is None else min(summary.pitch_min, low)
        summary.pitch_max = high if summary.pitch_max is None else max(summary.pitch_max, high)
    if meta.get("source_key"):
        summary.keys[meta["source_key"]] += 1
    if meta.get("warnings"):
        summary.repaired.append(record)


def summary_lines(summary: FolderSummary, verbose: bool = False) -> list[str]:
    """Return the summary as text lines; `verbose` adds the file names behind each count."""
    tokenizer = summary.tokenizer
    lines = [f"folder: {summary.folder}",
             f"files: {summary.files:,} found, {summary.used:,} read, {summary.skipped_count:,} skipped"]
    for reason, records in sorted(summary.skipped.items(), key=lambda item: (-len(item[1]), item[0])):
        lines.append(f"  skipped {len(records):,}: {reason}")
        if verbose:
            lines += [f"    {_relative(record.path, summary.folder)}: {record.reason}" for record in records]
    lines.append(f"notes: {summary.notes:,} pitched notes in the files read")
    lines.append(f"tokens: {summary.tokens:,} ({tokenizer.name} tokenizer, {tokenizer.vocab_size} token vocabulary)")
    lines.append(_pitch_line(summary))
    lines.append(_key_line(summary))
    lines.append(f"duplicates: {summary.byte_duplicates:,} files with the same bytes as another, "
                 f"{summary.token_duplicates:,} read files with the same tokens as another")
    lines.append(f"repairs: {len(summary.repaired):,} read files needed repairs by the reader")
    if verbose:
        for record in summary.repaired:
            lines += [f"    {_relative(record.path, summary.folder)}: {warning}" for warning in record.meta["warnings"]]
    return lines


def _pitch_line(summary: FolderSummary) -> str:
    if summary.pitch_min is None or summary.pitch_max is None:
        return "pitch range: none (no file read)"
    line = (f"pitch range: {summary.pitch_min}..{summary.pitch_max} "
            f"({pitch_to_name(summary.pitch_min)}..{pitch_to_name(summary.pitch_max)})")
    if summary.folded_notes:
        tokenizer = summary.tokenizer
        line += (f"; {summary.folded_notes:,} notes moved by octaves into the tokenizer's range "
                 f"{tokenizer.pitch_low}..{tokenizer.pitch_high}")  # type: ignore[attr-defined]
    return line


def _key_line(summary: FolderSummary) -> str:
    if not summary.keys:
        return "keys: not estimated (--no-keys)" if summary.used else "keys: none (no file read)"
    counts = ", ".join(f"{key} {count:,}" for key, count in summary.keys.most_common())
    return f"keys (estimated): {counts}"


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)
