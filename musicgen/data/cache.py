"""On-disk cache of tokenized MIDI files, keyed by each file's content and the tokenizer settings.

Layout under the cache folder (`default_cache_dir()`, or --cache-dir):

    musicgen-cache-v1/index.sqlite            two tables: `files` maps a path, with its size, mtime
                                              and ctime, to the SHA-256 of its bytes; `results` maps
                                              (namespace, SHA-256) to the outcome of reading the file
    musicgen-cache-v1/<namespace>/tokens.u16  token ids of every cached file of that namespace,
                                              concatenated as uint16, append-only, memory-mapped

A namespace is a hash of everything that decides a file's tokens: the tokenizer's JSON form,
the ingest options, the reader's caps, and the source code of the modules that read and
encode. So an edited reader or tokenizer never gets stale tokens. A result is either the
file's tokens with its statistics, or the reason it was skipped. Each result carries a CRC-32
of its tokens and statistics, checked on every read: a result that fails the check is
reported as corrupted and never served.

A file whose size, mtime and ctime match its `files` row is not opened at all. A file that
changed is read and hashed again, and parsed only if no result exists for its new content.
The default folder is the user's cache folder rather than one inside the MIDI folder,
because MIDI folders may be read-only or shared, and because identical files in different
folders then share one result.

NOTE: nothing is ever removed. Results of changed or deleted files, and of old settings,
stay in the token files until the cache folder is deleted, which is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CACHE_FOLDER = "musicgen-cache-v1"
TOKENS_FILE = "tokens.u16"
INDEX_FILE = "index.sqlite"
SQLITE_TIMEOUT_SECONDS = 60.0  # how long a run waits for another run that is writing the index
_QUERY_BATCH = 500  # hashes per query; SQLite before 3.32 allows at most 999 parameters
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    namespace TEXT NOT NULL, sha256 TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
    checksum INTEGER NOT NULL, meta TEXT NOT NULL, PRIMARY KEY (namespace, sha256));
CREATE TABLE IF NOT EXISTS namespaces (namespace TEXT PRIMARY KEY, settings TEXT NOT NULL);
"""


def default_cache_dir() -> Path:
    """Return $MUSICGEN_CACHE_DIR, else the platform's user cache folder joined with 'musicgen'.

    That is %LOCALAPPDATA%\\musicgen on Windows, ~/Library/Caches/musicgen on macOS, and
    $XDG_CACHE_HOME/musicgen (default ~/.cache/musicgen) elsewhere.
    """
    override = os.environ.get("MUSICGEN_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "musicgen"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "musicgen"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "musicgen"


@dataclass(frozen=True)
class FileStat:
    """Size and times of a file, compared with the `files` table to skip opening an unchanged file."""

    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileStat:
        status = path.stat()
        return cls(status.st_size, status.st_mtime_ns, status.st_ctime_ns)


@dataclass(frozen=True)
class CachedResult:
    """Location of one result: `length` uint16 tokens from `offset` (in tokens) of the namespace's token file."""

    sha256: str
    offset: int
    length: int
    checksum: int
    meta_text: str

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads(self.meta_text)


class CacheUnavailableError(OSError):
    """The cache folder cannot be created or written; the run goes on without a cache."""


def namespace_of(settings: dict[str, Any]) -> str:
    """Return the 16-hex-digit namespace of the settings that decide a file's tokens."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def checksum_of(tokens: np.ndarray, meta_text: str) -> int:
    """Return the CRC-32 of a result's uint16 tokens followed by its statistics as UTF-8 JSON."""
    return zlib.crc32(meta_text.encode("utf-8"), zlib.crc32(np.ascontiguousarray(tokens, dtype=np.uint16)))


class TokenCache:
    """One namespace of the on-disk cache; see the module docstring for the layout."""

    def __init__(self, root: Path, settings: dict[str, Any]) -> None:
        self.root = Path(root) / CACHE_FOLDER
        self.namespace = namespace_of(settings)
        self.token_path = self.root / self.namespace / TOKENS_FILE
        self._tokens: np.memmap | None = None
        try:
            self.token_path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = self._connect()
        except (OSError, sqlite3.Error) as error:
            raise CacheUnavailableError(f"cannot use the cache folder {self.root}: {error}") from error
        with self._connection:
            self._connection.execute(
                "INSERT OR IGNORE INTO namespaces VALUES (?, ?)", (self.namespace, json.dumps(settings, sort_keys=True))
            )

    def _connect(self) -> sqlite3.Connection:
        """Open the index, or rebuild it when SQLite finds it damaged (the token files go with it)."""
        index = self.root / INDEX_FILE
        try:
            connection = sqlite3.connect(index, timeout=SQLITE_TIMEOUT_SECONDS)
            connection.executescript(_SCHEMA)
            connection.execute("SELECT count(*) FROM results").fetchone()
            return connection
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
                raise
            logger.warning("cache index %s is damaged (%s); rebuilding the cache", index, error)
            self._remove_all()
            connection = sqlite3.connect(index, timeout=SQLITE_TIMEOUT_SECONDS)
            connection.executescript(_SCHEMA)
            return connection

    def _remove_all(self) -> None:
        """Delete the index and every namespace's token file, and nothing else in the folder."""
        for suffix in ("", "-journal", "-wal", "-shm"):
            (self.root / (INDEX_FILE + suffix)).unlink(missing_ok=True)
        for token_file in self.root.glob(f"*/{TOKENS_FILE}"):
            token_file.unlink(missing_ok=True)

    def close(self) -> None:
        self._connection.close()

    # -- paths ---------------------------------------------------------------------------

    def known_hashes(self, stats: dict[Path, FileStat]) -> dict[Path, str]:
        """Return the content hash of each path whose size, mtime and ctime match its `files` row."""
        rows = self._connection.execute("SELECT path, size, mtime_ns, ctime_ns, sha256 FROM files").fetchall()
        stored = {path: (FileStat(size, mtime, ctime), sha256) for path, size, mtime, ctime, sha256 in rows}
        known = {}
        for path, stat in stats.items():
            row = stored.get(_path_key(path))
            if row is not None and row[0] == stat:
                known[path] = row[1]
        return known

    def remember_paths(self, rows: list[tuple[Path, FileStat, str]]) -> None:
        """Record the content hash of each path, with the size and times it had when read."""
        with self._connection:
            self._connection.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                [(_path_key(path), stat.size, stat.mtime_ns, stat.ctime_ns, sha256) for path, stat, sha256 in rows],
            )

    # -- results -------------------------------------------------------------------------

    def results(self, hashes: set[str]) -> dict[str, CachedResult]:
        """Return the results of this namespace for the given content hashes (not yet checked)."""
        found = {}
        ordered = sorted(hashes)
        for first in range(0, len(ordered), _QUERY_BATCH):
            batch = ordered[first : first + _QUERY_BATCH]
            rows = self._connection.execute(
                f"SELECT sha256, offset, length, checksum, meta FROM results WHERE namespace = ? "
                f"AND sha256 IN ({', '.join('?' * len(batch))})", (self.namespace, *batch),
            ).fetchall()
            found.update((row[0], CachedResult(*row)) for row in rows)
        return found

    def result_hashes(self) -> frozenset[str]:
        """Return the content hash of every result of this namespace."""
        rows = self._connection.execute("SELECT sha256 FROM results WHERE namespace = ?", (self.namespace,))
        return frozenset(row[0] for row in rows)

    def tokens(self, result: CachedResult) -> np.ndarray | None:
        """Return the result's tokens as a read-only memory-mapped view, or None when its checksum fails."""
        if result.length == 0:
            tokens = np.zeros(0, dtype=np.uint16)
        else:
            mapped = self._mapped_tokens()
            if mapped is None or result.offset + result.length > len(mapped):
                return None
            tokens = mapped[result.offset : result.offset + result.length]
        if checksum_of(tokens, result.meta_text) != result.checksum:
            return None
        return tokens

    def _mapped_tokens(self) -> np.memmap | None:
        if self._tokens is None:
            if not self.token_path.exists() or self.token_path.stat().st_size < 2:
                return None
            self._tokens = np.memmap(self.token_path, dtype=np.uint16, mode="r")
        return self._tokens

    def store(self, items: list[tuple[str, np.ndarray | None, dict[str, Any]]]) -> list[CachedResult]:
        """Append results given as (content hash, tokens or None, statistics) and index them.

        The index stays locked while the tokens are appended, so two runs that write to
        one cache at the same time never interleave their bytes.
        """
        stored = []
        connection = self._connection
        connection.isolation_level = None
        try:
            connection.execute("BEGIN IMMEDIATE")
            with open(self.token_path, "ab") as stream:
                position = stream.seek(0, os.SEEK_END)
                if position % 2:  # an append cut short by a crash left half a token
                    position += stream.write(b"\0")
                offset = position // 2
                for sha256, tokens, meta in items:
                    array = np.ascontiguousarray(tokens if tokens is not None else np.zeros(0), dtype=np.uint16)
                    meta_text = json.dumps(meta, sort_keys=True)
                    stream.write(array.tobytes())
                    stored.append(CachedResult(sha256, offset, len(array), checksum_of(array, meta_text), meta_text))
                    offset += len(array)
            connection.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                [(self.namespace, r.sha256, r.offset, r.length, r.checksum, r.meta_text) for r in stored],
            )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            connection.isolation_level = ""
        self._tokens = None  # the file grew: map it again on the next read
        return stored


def _path_key(path: Path) -> bytes:
    """Return the absolute path as bytes, because a file name need not be valid UTF-8, which SQLite text must be."""
    return os.fsencode(os.path.abspath(path))
