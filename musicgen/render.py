"""Render MIDI files to WAV, piano-roll PNG and MusicXML beside them.

Audio comes from the FluidSynth program with a General MIDI soundfont (Debian packages
`fluidsynth` and `fluid-soundfont-gm`). Without them it comes from pretty_midi's built-in
synthesis, which plays every note as a sine wave and skips drums. Either way the audio is
cut or padded to the last note's end plus `TAIL_SECONDS`, then scaled to `TARGET_RMS_DBFS`
unless that would push the peak above `PEAK_LIMIT_DBFS`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgen.errors import MusicgenError
from musicgen.midi_io import MidiReadError, read_score
from musicgen.new_file import write_new_file
from musicgen.score import Score

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44_100  # Hz
TAIL_SECONDS = 1.0  # kept after the last note ends, for the release of the sound
TARGET_RMS_DBFS = -20.0  # loudness aimed at, as RMS relative to full scale
PEAK_LIMIT_DBFS = -1.0  # the peak is never louder than this, so nothing clips
SILENCE_RMS = 1e-6  # below this RMS (relative to full scale) the audio counts as silent
FLUIDSYNTH_TIMEOUT_SECONDS = 600
SOUNDFONT_ENVIRONMENT = "MUSICGEN_SOUNDFONT"
# Paths of General MIDI soundfonts: Debian's fluid-soundfont-gm package and other distributions.
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
FORMATS = ("wav", "png", "musicxml")
SUFFIXES = {"wav": ".wav", "png": ".png", "musicxml": ".musicxml"}


class RenderError(MusicgenError):
    pass


@dataclass
class Audio:
    """Samples as float32 in -1..1 with shape (frames, channels), and what made them."""

    samples: np.ndarray
    sample_rate: int
    synthesizer: str  # "fluidsynth" or "pretty_midi sine waves"

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def find_soundfont(explicit: Path | None = None) -> Path | None:
    """Return `explicit`, else $MUSICGEN_SOUNDFONT, else the first General MIDI soundfont installed."""
    if explicit is not None:
        if not explicit.is_file():
            raise RenderError(f"soundfont not found: {explicit}; give the path of a .sf2 file")
        return explicit
    from_environment = os.environ.get(SOUNDFONT_ENVIRONMENT)
    if from_environment:
        if not Path(from_environment).is_file():
            raise RenderError(f"${SOUNDFONT_ENVIRONMENT} is {from_environment}, which is not a file; fix or unset it")
        return Path(from_environment)
    return next((Path(path) for path in SOUNDFONT_PATHS if Path(path).is_file()), None)


def synthesize(midi_path: Path, sample_rate: int = SAMPLE_RATE, use_fluidsynth: bool = True,
               soundfont: Path | None = None) -> Audio:
    """Synthesize a MIDI file, fitted to its length plus the tail and normalized in loudness."""
    try:
        score = read_score(midi_path)
    except MidiReadError as error:
        raise RenderError(f"cannot render {midi_path}: {error}") from None
    if not score.notes:
        raise RenderError(f"cannot render {midi_path}: it contains no notes")
    midi = score_to_pretty_midi(score)
    program = shutil.which("fluidsynth") if use_fluidsynth else None
    font = find_soundfont(soundfont) if use_fluidsynth else None
    if program and font:
        audio = _fluidsynth(program, font, midi, sample_rate)
    else:
        if not use_fluidsynth:
            reason = "FluidSynth is turned off"
        else:
            missing = "FluidSynth is not installed" if not program else "no General MIDI soundfont was found"
            reason = f"{missing} (install both with 'make audio-deps')"
        logger.info("%s: rendering %s with pretty_midi's sine waves", reason, midi_path.name)
        # pretty_midi 0.2.11 divides by the peak, which gives NaN when nothing sounded (drums only).
        with np.errstate(invalid="ignore"):
            samples = np.nan_to_num(midi.synthesize(fs=sample_rate)).astype(np.float32)[:, None]
        audio = Audio(samples, sample_rate, "pretty_midi sine waves")
    frames = round((score.tick_to_seconds(score.end_tick) + TAIL_SECONDS) * sample_rate)
    audio.samples = fit_length(audio.samples, frames)
    audio.samples = normalize(audio.samples, midi_path, audio.synthesizer)
    return audio


def score_to_pretty_midi(score: Score):
    """Build a PrettyMIDI with one instrument per (channel, program), note times in seconds."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    instruments: dict[tuple[int, int], pretty_midi.Instrument] = {}
    for note in score.notes:
        key = (note.channel, note.program)
        if key not in instruments:
            instruments[key] = pretty_midi.Instrument(program=note.program, is_drum=note.is_drum)
        instruments[key].notes.append(pretty_midi.Note(
            velocity=note.velocity, pitch=note.pitch,
            start=score.tick_to_seconds(note.start_tick), end=score.tick_to_seconds(note.end_tick)))
    midi.instruments = list(instruments.values())
    return midi


def _fluidsynth(program: str, soundfont: Path, midi, sample_rate: int) -> Audio:
    """Render with the fluidsynth command line: fast (non-real-time) rendering to a 16-bit WAV."""
    with tempfile.TemporaryDirectory(prefix="musicgen-render-") as folder:
        midi_path, wav_path = Path(folder) / "input.mid", Path(folder) / "output.wav"
        midi.write(str(midi_path))
        command = [program, "-ni", "-q", "-F", str(wav_path), "-T", "wav", "-O", "s16", "-r", str(sample_rate),
                   str(soundfont), str(midi_path)]
        try:
            completed = subprocess.run(command, capture_output=True, text=True, timeout=FLUIDSYNTH_TIMEOUT_SECONDS,
                                       check=False)
        except subprocess.TimeoutExpired:
            raise RenderError(f"fluidsynth did not finish within {FLUIDSYNTH_TIMEOUT_SECONDS} s") from None
        if completed.returncode != 0 or not wav_path.is_file():
            detail = (completed.stderr or completed.stdout).strip().splitlines()
            raise RenderError(f"fluidsynth failed (exit code {completed.returncode}): {detail[-1] if detail else 'no output'}")
        samples, rate = read_wav(wav_path)
    return Audio(samples, rate, "fluidsynth")


def fit_length(samples: np.ndarray, frames: int) -> np.ndarray:
    """Cut `samples` to `frames` frames, or pad them with silence up to it."""
    if len(samples) >= frames:
        return samples[:frames]
    padding = np.zeros((frames - len(samples), samples.shape[1]), dtype=samples.dtype)
    return np.concatenate((samples, padding))


def normalize(samples: np.ndarray, source: Path, synthesizer: str) -> np.ndarray:
    """Scale samples to the target RMS, or lower so the peak stays at the limit; silence is an error."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms < SILENCE_RMS:
        hint = " (pretty_midi's sine waves do not play drums; install FluidSynth)" if "sine" in synthesizer else ""
        raise RenderError(f"the audio of {source} is silent{hint}")
    peak = float(np.max(np.abs(samples)))
    gain = min(10 ** (TARGET_RMS_DBFS / 20) / rms, 10 ** (PEAK_LIMIT_DBFS / 20) / peak)
    return (samples * gain).astype(np.float32)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV file as float32 samples of shape (frames, channels), and its sample rate."""
    with wave.open(str(path), "rb") as reader:
        if reader.getsampwidth() != 2:
            raise RenderError(f"{path} has {8 * reader.getsampwidth()}-bit samples; only 16-bit WAV is read")
        frames = reader.readframes(reader.getnframes())
        samples = np.frombuffer(frames, dtype="<i2").reshape(-1, reader.getnchannels())
        return samples.astype(np.float32) / 32768.0, reader.getframerate()


def write_wav(path: Path, audio: Audio) -> Path:
    """Write 16-bit PCM WAV; raises FileExistsError if `path` exists."""
    pcm = np.clip(np.round(audio.samples * 32767.0), -32768, 32767).astype("<i2")

    def write(temporary: Path) -> None:
        with wave.open(str(temporary), "wb") as writer:
            writer.setnchannels(pcm.shape[1])
            writer.setsampwidth(2)
            writer.setframerate(audio.sample_rate)
            writer.writeframes(pcm.tobytes())

    return write_new_file(path, write)


def render_wav(midi_path: Path, wav_path: Path, use_fluidsynth: bool = True, soundfont: Path | None = None,
               sample_rate: int = SAMPLE_RATE) -> Audio:
    """Synthesize `midi_path` into a new WAV file at `wav_path`; returns the audio written."""
    if wav_path.exists():
        raise FileExistsError(f"{wav_path} already exists; delete it or choose another output folder")
    audio = synthesize(midi_path, sample_rate, use_fluidsynth, soundfont)
    write_wav(wav_path, audio)
    logger.info("wrote %s (%.1f s, %s)", wav_path, audio.seconds, audio.synthesizer)
    return audio


def render_file(midi_path: Path, formats: list[str], output_dir: Path | None = None, use_fluidsynth: bool = True,
                soundfont: Path | None = None) -> list[Path]:
    """Write each of `formats` ("wav", "png", "musicxml") for one MIDI file; returns the paths written.

    Outputs are named like the MIDI file with another suffix, in `output_dir` or beside it.
    An existing output file is never replaced: it raises FileExistsError.
    """
    folder = output_dir if output_dir is not None else midi_path.parent
    targets = {name: folder / (midi_path.stem + SUFFIXES[name]) for name in formats}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} already exists; delete it or choose another output folder")
    written = []
    if "wav" in targets:
        render_wav(midi_path, targets["wav"], use_fluidsynth, soundfont)
        written.append(targets["wav"])
    if "png" in targets or "musicxml" in targets:
        from musicgen.melody_file import read_melody_file

        melody = read_melody_file(midi_path)
        if "png" in targets:
            from musicgen.pianoroll import write_piano_roll

            written.append(write_piano_roll(melody, targets["png"]))
        if "musicxml" in targets:
            from musicgen.score_export import write_musicxml

            written.append(write_musicxml(melody, targets["musicxml"]))
    return written
