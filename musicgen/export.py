"""Write melodies to .mid files with a JSON sidecar, never replacing an existing file."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

_MAX_INDEX = 999_999


def write_midi(midi: Any, output_dir: Path, stem: str, settings: dict[str, Any]) -> Path:
    """Write `midi` (a PrettyMIDI) as `stem-NNN.mid` with the next free number, plus `stem-NNN.json`.

    The settings go into a text meta event at tick 0 and into the sidecar, so the melody
    can be made again. Files are opened in exclusive mode, so an existing file is skipped
    to the next number instead of overwritten, even if another process writes at the same time.
    """
    import pretty_midi

    output_dir.mkdir(parents=True, exist_ok=True)
    text = "musicgen " + json.dumps(settings, sort_keys=True, ensure_ascii=True)
    midi.text_events.append(pretty_midi.Text(text, 0.0))
    data = _midi_bytes(midi)
    sidecar = json.dumps(settings, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    for index in range(1, _MAX_INDEX + 1):
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
