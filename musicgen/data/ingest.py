"""Read and tokenize a MIDI folder in worker processes, through the on-disk token cache.

`ingest_folder` is what training uses: it returns a `Corpus`. `ingest_records` returns one
`FileRecord` per file with its statistics, for `musicgen inspect`. A file's outcome is
either its token ids or one reason string; no file can stop the run.

Each worker reads a file's bytes once: their SHA-256 is the cache key, and the same bytes
are parsed by `musicgen.midi_io.read_score`. A file whose content already has a result in
the cache is hashed but not parsed.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from musicgen.data.cache import CachedResult, CacheUnavailableError, FileStat, TokenCache, default_cache_dir
from musicgen.data.corpus import Corpus, CorpusError, EncodedFile, reason_kind, require_midi_files
from musicgen.midi_io import MidiReadError, ReadLimits, read_score
from musicgen.score import Score
from musicgen.tokenizer.base import NoNotesError, Tokenizer, tokenizer_from_dict

logger = logging.getLogger(__name__)

MAX_DEFAULT_WORKERS = 8
# Below this many files to parse, starting worker processes costs more than it saves.
MIN_FILES_FOR_WORKERS = 16
STORE_BATCH_FILES = 256  # results written to the cache at once, bounding what waits in memory
INTERNAL_ERROR = "internal error"
# Modules whose code decides a file's tokens; their source is part of the cache namespace.
_ENCODING_MODULES = ("midi_io.py", "score.py", "keys.py", "tokenizer/base.py", "tokenizer/melody.py",
                     "tokenizer/event.py", "data/transpose.py", "data/ingest.py")


def default_workers() -> int:
    """Return min(CPU count, 8): the default number of worker processes."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


@dataclass(frozen=True)
class IngestOptions:
    """Settings for reading a folder: worker processes, cache, key estimation and transposition."""

    workers: int = field(default_factory=default_workers)
    cache_dir: Path | None = field(default_factory=default_cache_dir)  # None turns the cache off
    transpose_to_c: bool = False  # move every piece to C major or A minor before encoding
    estimate_keys: bool = False  # estimate each piece's key even when encoding does not need it
    show_progress: bool = True

    def needs_keys(self, tokenizer: Tokenizer) -> bool:
        return self.estimate_keys or self.transpose_to_c or tokenizer.key_tokens


@dataclass
class FileRecord:
    """The outcome of one file: its tokens and statistics, or the reason it was skipped."""

    path: Path
    sha256: str
    meta: dict[str, Any]  # 'reason', or 'notes', 'tokens', 'pitch_min', 'pitch_max', 'key', ...
    ids: np.ndarray | None = None  # uint16 token ids with BOS and EOS; None for a skipped file

    @property
    def reason(self) -> str | None:
        return self.meta.get("reason")


@dataclass
class IngestResult:
    records: list[FileRecord]
    files_read: int = 0  # MIDI files opened in this run
    files_parsed: int = 0  # files parsed and tokenized in this run
    from_cache: int = 0  # files whose result came from the cache without opening them
    corrupted_hashes: set[str] = field(default_factory=set)  # cached results that failed their checksum

    @property
    def corrupted(self) -> int:
        """Cached results that failed their checksum and were rebuilt."""
        return len(self.corrupted_hashes)


# -- the work on one file, run in worker processes --------------------------------------

_worker_state: dict[str, Any] = {}


def _init_worker(tokenizer_data: dict[str, Any], options: dict[str, Any], cached_hashes: frozenset[str]) -> None:
    _worker_state["tokenizer"] = tokenizer_from_dict(tokenizer_data)
    _worker_state["options"] = options
    _worker_state["cached_hashes"] = cached_hashes


def _process_path(path: Path) -> tuple[str, np.ndarray | None, dict[str, Any] | None]:
    """Read, hash and encode one file; returns (SHA-256, ids, statistics), statistics None if cached."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(ReadLimits().max_bytes + 1)
    except OSError as error:
        return "", None, {"reason": f"cannot read file: {error.strerror or error}"}
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 in _worker_state["cached_hashes"]:
        return sha256, None, None
    ids, meta = encode_bytes(data, _worker_state["tokenizer"], **_worker_state["options"])
    return sha256, ids, meta


def encode_bytes(data: bytes, tokenizer: Tokenizer, transpose_to_c: bool = False,
                 estimate_keys: bool = False) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Parse and encode one file's bytes; returns (uint16 ids with BOS and EOS, statistics) or (None, {'reason': ...})."""
    try:
        score = read_score(data)
        return _encode_score(score, tokenizer, transpose_to_c, estimate_keys)
    except (MidiReadError, NoNotesError) as error:
        return None, {"reason": str(error)}
    except Exception as error:  # noqa: BLE001 - one file from the wild must never stop a run
        logger.debug("error while encoding a file", exc_info=True)
        return None, {"reason": f"{INTERNAL_ERROR}: {type(error).__name__}: {error}"}


def _encode_score(score: Score, tokenizer: Tokenizer, transpose_to_c: bool,
                  estimate_keys: bool) -> tuple[np.ndarray, dict[str, Any]]:
    from musicgen.data.transpose import shift_to_c, transpose_score, transposed_key

    pitched = score.pitched_notes
    if not pitched:
        raise NoNotesError("drums only" if score.notes else "no notes")
    meta: dict[str, Any] = {"source_notes": len(pitched), "pitch_min": min(note.pitch for note in pitched),
                            "pitch_max": max(note.pitch for note in pitched), "warnings": score.warnings}
    key = None
    if estimate_keys or transpose_to_c or tokenizer.key_tokens:
        from musicgen.keys import estimate_key

        key = meta["source_key"] = estimate_key(score)
    if transpose_to_c and key is not None:
        shift = meta["transposed"] = shift_to_c(key)
        score = transpose_score(score, shift)
        key = transposed_key(key, shift)
    meta["key"] = key
    ids, stats = tokenizer.encode_with_stats(score, key=key)
    meta.update(asdict(stats), tokens=len(ids))
    return np.asarray(ids, dtype=np.uint16), meta


# -- the folder ------------------------------------------------------------------------


def ingest_folder(folder: Path, tokenizer: Tokenizer, options: IngestOptions | None = None) -> Corpus:
    """Read and encode every MIDI file under `folder` into a Corpus; bad files are logged and skipped."""
    result = ingest_records(folder, tokenizer, options)
    options = options or IngestOptions()
    corpus = Corpus(folder, settings={"transpose_to_c": options.transpose_to_c})
    for record in result.records:
        if record.ids is None:
            corpus.skipped.setdefault(reason_kind(record.reason or ""), []).append(record.path)
            continue
        corpus.folded_notes += record.meta.get("folded_notes", 0)
        corpus.files.append(EncodedFile(record.path, record.ids, record.meta["notes"], key=record.meta.get("key")))
    logger.info("%s: %s", folder, corpus.summary())
    if corpus.folded_notes:
        logger.info("moved %d notes by octaves into the pitch range", corpus.folded_notes)
    if not corpus.files:
        raise CorpusError(
            f"none of the {len(result.records)} MIDI files in {folder} could be used ({corpus.summary()}); "
            "see the warnings above for each file"
        )
    return corpus


def ingest_records(folder: Path, tokenizer: Tokenizer, options: IngestOptions | None = None,
                   log_skips: bool = True) -> IngestResult:
    """Return the outcome of every MIDI file under `folder`, sorted by path, using and filling the cache.

    With `log_skips`, each skipped file is logged as a warning with its reason.
    """
    options = options or IngestOptions()
    paths = require_midi_files(folder)
    cache = _open_cache(tokenizer, options)
    try:
        result = _ingest(paths, tokenizer, options, cache)
    finally:
        if cache is not None:
            cache.close()
    for record in result.records:
        if log_skips and record.reason is not None:
            logger.warning("skipped %s: %s", record.path, record.reason)
    _log_cache_use(result, options)
    return result


def cache_settings(tokenizer: Tokenizer, options: IngestOptions) -> dict[str, Any]:
    """Return everything that decides a file's tokens: the cache namespace is a hash of it."""
    package = Path(__file__).resolve().parents[1]
    code = hashlib.sha256()
    for name in _ENCODING_MODULES:
        code.update((package / name).read_bytes())
    return {"tokenizer": tokenizer.to_dict(), "transpose_to_c": options.transpose_to_c,
            "keys": options.needs_keys(tokenizer), "limits": asdict(ReadLimits()), "code": code.hexdigest()}


def _open_cache(tokenizer: Tokenizer, options: IngestOptions) -> TokenCache | None:
    if options.cache_dir is None:
        return None
    try:
        return TokenCache(options.cache_dir, cache_settings(tokenizer, options))
    except CacheUnavailableError as error:
        logger.warning("%s; reading every file without a cache (choose another --cache-dir, or --no-cache)", error)
        return None


def _ingest(paths: list[Path], tokenizer: Tokenizer, options: IngestOptions, cache: TokenCache | None) -> IngestResult:
    """Serve what the cache has, parse the rest in workers, store the new results."""
    result = IngestResult(records=[])
    records: dict[Path, FileRecord] = {}
    stats = _file_stats(paths) if cache is not None else {}
    if cache is not None:
        known = cache.known_hashes(stats)
        cached = cache.results(set(known.values()))
        for path, sha256 in known.items():
            record = _cached_record(path, cached.get(sha256), cache, result)
            if record is not None:
                records[path] = record
    result.from_cache = len(records)
    to_read = [path for path in paths if path not in records]
    # Content that is cached under another path, or that a touched file still has, is hashed but not parsed.
    reusable = cache.result_hashes() - result.corrupted_hashes if cache is not None and to_read else frozenset()

    new_paths: list[tuple[Path, FileStat, str]] = []
    pending: list[tuple[Path, str, np.ndarray | None, dict[str, Any]]] = []
    for path, (sha256, ids, meta) in zip(to_read, _run_workers(to_read, tokenizer, options, reusable)):
        result.files_read += 1
        if meta is None:
            records[path] = _reused_record(path, sha256, tokenizer, options, cache, result)
        else:
            result.files_parsed += 1
            pending.append((path, sha256, ids, meta))
        if sha256 and path in stats:
            new_paths.append((path, stats[path], sha256))
        if len(pending) >= STORE_BATCH_FILES:
            records.update(_store(pending, cache))
            pending = []
    records.update(_store(pending, cache))
    if cache is not None and new_paths:
        cache.remember_paths(new_paths)
    result.records = [records[path] for path in paths]
    return result


def _file_stats(paths: list[Path]) -> dict[Path, FileStat]:
    """Return the size and times of each path; a file that vanished since the scan is left out."""
    stats = {}
    for path in paths:
        try:
            stats[path] = FileStat.of(path)
        except OSError:
            continue
    return stats


def _cached_record(path: Path, entry: CachedResult | None, cache: TokenCache, result: IngestResult) -> FileRecord | None:
    """Return the record of `path` from its cached result, or None when there is none or it fails its checksum."""
    if entry is None or entry.sha256 in result.corrupted_hashes:
        return None
    tokens = cache.tokens(entry)
    if tokens is None:
        logger.warning("cache entry of %s is corrupted (checksum mismatch); reading the file again", path)
        result.corrupted_hashes.add(entry.sha256)
        return None
    meta = entry.meta
    return FileRecord(path, entry.sha256, meta, None if "reason" in meta else tokens)


def _reused_record(path: Path, sha256: str, tokenizer: Tokenizer, options: IngestOptions, cache: TokenCache | None,
                   result: IngestResult) -> FileRecord:
    """Return the cached record of content a worker hashed but did not parse, parsing it here if that fails."""
    if cache is not None:
        record = _cached_record(path, cache.results({sha256}).get(sha256), cache, result)
        if record is not None:
            return record
    # The result vanished or failed its checksum since the workers started: parse in this process.
    data = path.read_bytes()
    ids, meta = encode_bytes(data, tokenizer, options.transpose_to_c, options.estimate_keys)
    result.files_parsed += 1
    sha256 = hashlib.sha256(data).hexdigest()
    return _store([(path, sha256, ids, meta)], cache)[path]


def _store(pending: list[tuple[Path, str, np.ndarray | None, dict[str, Any]]],
           cache: TokenCache | None) -> dict[Path, FileRecord]:
    """Write parsed results to the cache and return their records, with tokens mapped from the cache file."""
    records = {path: FileRecord(path, sha, meta, ids) for path, sha, ids, meta in pending}
    if cache is None or not pending:
        return records
    # A file that could not be opened, or that hit an internal error, is not cached, so a later run retries it.
    keep = [item for item in pending if item[1] and not item[3].get("reason", "").startswith(INTERNAL_ERROR)]
    unique = {sha: (sha, ids, meta) for _, sha, ids, meta in keep}
    stored = {entry.sha256: entry for entry in cache.store(list(unique.values()))}
    for path, sha, ids, meta in keep:
        tokens = cache.tokens(stored[sha]) if ids is not None else None
        records[path] = FileRecord(path, sha, meta, tokens if tokens is not None else ids)
    return records


def _run_workers(paths: list[Path], tokenizer: Tokenizer, options: IngestOptions,
                 cached_hashes: frozenset[str]) -> Iterator[tuple[str, np.ndarray | None, dict[str, Any] | None]]:
    """Yield `_process_path` of each path in order, from worker processes when there are enough files."""
    worker_options = {"transpose_to_c": options.transpose_to_c, "estimate_keys": options.estimate_keys}
    bar = tqdm(total=len(paths), desc="reading MIDI", unit="file", disable=not options.show_progress or not paths,
               leave=False)
    workers = min(options.workers, len(paths))
    if workers <= 1 or len(paths) < MIN_FILES_FOR_WORKERS:
        _init_worker(tokenizer.to_dict(), worker_options, cached_hashes)
        outcomes: Iterator = map(_process_path, paths)
    else:
        outcomes = _pool_map(paths, workers, (tokenizer.to_dict(), worker_options, cached_hashes))
    try:
        for outcome in outcomes:
            bar.update()
            yield outcome
    finally:
        bar.close()


def _pool_map(paths: list[Path], workers: int, initargs: tuple) -> Iterator:
    """Map `_process_path` over `paths` in a pool of `workers` processes, in order."""
    # On Linux, fork starts workers in milliseconds and never runs the caller's main script
    # again, which spawn and forkserver do for a script without a `__main__` guard. The
    # workers use no torch and no thread of the parent. macOS and Windows keep their
    # default, spawn, because fork is unsafe with the system libraries of macOS.
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    chunk = max(1, min(32, len(paths) // (workers * 8)))
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
            yield from pool.map(_process_path, paths, chunksize=chunk)
    except BrokenProcessPool as error:
        raise CorpusError(
            f"a worker process died while reading MIDI files ({error}); it may have run out of memory: "
            "rerun with --workers 1 to read the files one by one"
        ) from None


def _log_cache_use(result: IngestResult, options: IngestOptions) -> None:
    if options.cache_dir is None:
        return
    logger.info("cache: %d files served from %s, %d files read, %d parsed",
                result.from_cache, options.cache_dir, result.files_read, result.files_parsed)
    if result.corrupted:
        logger.warning("cache: rebuilt %d corrupted entries", result.corrupted)
