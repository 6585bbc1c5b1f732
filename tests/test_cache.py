"""The token cache: what a second run opens, changed, deleted and corrupted files, and worker processes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from musicgen.data.cache import CACHE_FOLDER, INDEX_FILE, TOKENS_FILE, default_cache_dir
from musicgen.data.ingest import IngestOptions, ingest_folder, ingest_records
from musicgen.tokenizer import EventTokenizer, MelodyTokenizer
from tests.conftest import BACH_MELODIES, copy_melodies

# Paths of .mid files this process opens while `_watching` is set, seen through an audit hook,
# which records every open() independently of the code under test. Hooks cannot be removed,
# so the one hook stays installed and records only while `_watching` is set.
_opened: list[str] = []
_watching = False


def _audit(event: str, arguments: tuple) -> None:
    if _watching and event == "open" and isinstance(arguments[0], (str, Path)) and str(arguments[0]).endswith(".mid"):
        _opened.append(str(arguments[0]))


sys.addaudithook(_audit)


def ingest_watching(folder: Path, tokenizer, cache_dir: Path, workers: int = 1):
    """Ingest `folder` in this process and return the result with the .mid paths opened meanwhile."""
    global _watching
    _opened.clear()
    _watching = True
    try:
        result = ingest_records(folder, tokenizer, IngestOptions(workers=workers, cache_dir=cache_dir, show_progress=False))
    finally:
        _watching = False
    return result, sorted(set(_opened))


def tokens_by_name(result) -> dict[str, list[int] | None]:
    return {record.path.name: None if record.ids is None else record.ids.tolist() for record in result.records}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return copy_melodies(tmp_path / "midi", 6)


def test_second_run_opens_no_midi_file(folder, tmp_path):
    first, opened_first = ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    second, opened_second = ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    assert len(opened_first) == 6
    assert opened_second == []
    assert (second.files_read, second.from_cache) == (0, 6)
    assert tokens_by_name(second) == tokens_by_name(first)


def test_cached_tokens_are_memory_mapped(folder, tmp_path):
    ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    second, _ = ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    assert all(isinstance(record.ids, np.memmap) and record.ids.dtype == np.uint16 for record in second.records)


def test_modified_file_read_again_alone(folder, tmp_path):
    ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    changed = sorted(folder.glob("*.mid"))[2]
    shutil.copy(sorted(BACH_MELODIES.glob("*.mid"))[-1], changed)
    second, opened = ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    assert opened == [str(changed)]
    assert (second.files_read, second.files_parsed) == (1, 1)
    record = next(record for record in second.records if record.path == changed)
    assert record.ids.tolist() == MelodyTokenizer().encode(changed)


def test_touched_file_hashed_not_parsed(folder, tmp_path):
    ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    touched = sorted(folder.glob("*.mid"))[0]
    touched.write_bytes(touched.read_bytes())  # same content, new mtime and ctime
    second, opened = ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    assert opened == [str(touched)]
    assert (second.files_read, second.files_parsed) == (1, 0)


def test_deleted_file_not_served(folder, tmp_path):
    ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    deleted = sorted(folder.glob("*.mid"))[1]
    deleted.unlink()
    corpus = ingest_folder(folder, MelodyTokenizer(), IngestOptions(workers=1, cache_dir=tmp_path / "cache",
                                                                      show_progress=False))
    assert len(corpus.files) == 5
    assert deleted not in [encoded.path for encoded in corpus.files]


def test_corrupted_entry_detected_and_rebuilt(folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    first, _ = ingest_watching(folder, MelodyTokenizer(), cache)
    expected = tokens_by_name(first)  # copied now: the first run's tokens are mapped from the file changed below
    token_file = next((cache / CACHE_FOLDER).glob(f"*/{TOKENS_FILE}"))
    victim = first.records[3]
    connection = sqlite3.connect(cache / CACHE_FOLDER / INDEX_FILE)
    (offset,) = connection.execute("SELECT offset FROM results WHERE sha256 = ?", (victim.sha256,)).fetchone()
    connection.close()
    data = bytearray(token_file.read_bytes())
    data[2 * offset + 10] ^= 0xFF  # flip one byte inside the fourth file's uint16 tokens
    token_file.write_bytes(bytes(data))

    second, opened = ingest_watching(folder, MelodyTokenizer(), cache)
    assert opened == [str(victim.path)]
    assert second.corrupted == 1
    assert "corrupted (checksum mismatch)" in caplog.text
    assert tokens_by_name(second) == expected
    third, opened = ingest_watching(folder, MelodyTokenizer(), cache)
    assert (opened, third.corrupted) == ([], 0)


def test_damaged_index_rebuilt(folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    first, _ = ingest_watching(folder, MelodyTokenizer(), cache)
    (cache / CACHE_FOLDER / INDEX_FILE).write_bytes(b"not a database" * 100)
    second, opened = ingest_watching(folder, MelodyTokenizer(), cache)
    assert "is damaged" in caplog.text
    assert len(opened) == 6
    assert tokens_by_name(second) == tokens_by_name(first)


def test_other_tokenizer_settings_read_again(folder, tmp_path):
    ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    _, opened = ingest_watching(folder, MelodyTokenizer(steps_per_quarter=8), tmp_path / "cache")
    assert len(opened) == 6
    _, opened = ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    assert opened == []


def test_skipped_files_cached_with_reason(edge_dir, tmp_path):
    folder = tmp_path / "edge"
    shutil.copytree(edge_dir, folder)
    first, _ = ingest_watching(folder, EventTokenizer(), tmp_path / "cache")
    second, opened = ingest_watching(folder, EventTokenizer(), tmp_path / "cache")
    assert opened == []
    reasons = {record.path.name: record.reason for record in second.records if record.reason}
    assert reasons == {"not_really_midi.mid": "not a MIDI file: no MThd header", "no_notes.mid": "no notes",
                       "control_change_only.mid": "no notes", "drums_only.mid": "drums only"}
    assert tokens_by_name(second) == tokens_by_name(first)


def test_copied_file_reuses_content(folder, tmp_path):
    ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    source = sorted(folder.glob("*.mid"))[0]
    copy = folder / "sub" / "copy.mid"
    copy.parent.mkdir()
    shutil.copy(source, copy)
    second, opened = ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    assert opened == [str(copy)]
    assert (second.files_read, second.files_parsed) == (1, 0)


def test_workers_match_one_process(tmp_path):
    folder = copy_melodies(tmp_path / "midi", 20)
    alone = ingest_records(folder, EventTokenizer(), IngestOptions(workers=1, cache_dir=None, show_progress=False))
    pooled = ingest_records(folder, EventTokenizer(), IngestOptions(workers=2, cache_dir=tmp_path / "cache",
                                                                    show_progress=False))
    assert pooled.files_parsed == 20
    assert tokens_by_name(pooled) == tokens_by_name(alone)


def test_unusable_cache_folder_warns_and_reads(folder, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    result, opened = ingest_watching(folder, MelodyTokenizer(), blocker)
    assert len(opened) == 6
    assert len(result.records) == 6
    assert "cannot use the cache folder" in caplog.text


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICGEN_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("MUSICGEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_cache_dir() == tmp_path / "xdg" / "musicgen"


def test_index_lists_namespace_settings(folder, tmp_path):
    ingest_watching(folder, EventTokenizer(velocity_bins=8), tmp_path / "cache")
    connection = sqlite3.connect(tmp_path / "cache" / CACHE_FOLDER / INDEX_FILE)
    settings = [row[0] for row in connection.execute("SELECT settings FROM namespaces")]
    connection.close()
    assert len(settings) == 1
    assert '"velocity_bins": 8' in settings[0]


@pytest.mark.skipif(sys.platform != "linux", reason="names that are not valid UTF-8 exist on Linux file systems")
def test_name_not_utf8_cached(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.mid")  # Latin-1 bytes, read back with a surrogate escape
    shutil.copy(sorted(BACH_MELODIES.glob("*.mid"))[0], folder / name)
    ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    second, opened = ingest_watching(folder, MelodyTokenizer(), tmp_path / "cache")
    assert opened == []
    assert second.records[0].path.name == name
