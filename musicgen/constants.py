"""Numbers of the MIDI standard and the project's defaults, each with its bounds."""

# MIDI 1.0 data bytes are 7 bits, so pitches and velocities lie in 0..127 (inclusive).
MIDI_PITCH_MIN = 0
MIDI_PITCH_MAX = 127
MIDI_VELOCITY_MIN = 1  # a note-on with velocity 0 is a note-off (MIDI 1.0 spec)
MIDI_VELOCITY_MAX = 127

# General MIDI puts percussion on channel 10, which is index 9 when counting from 0.
DRUM_CHANNEL = 9

# Standard MIDI File defaults: 120 BPM is 500,000 microseconds per quarter note.
DEFAULT_TEMPO_BPM = 120.0
DEFAULT_US_PER_QUARTER = 500_000
DEFAULT_TIME_SIGNATURE = (4, 4)

# Ticks per quarter note of the files musicgen writes; divisible by 2, 3, 4, 8 and 16.
WRITE_TICKS_PER_QUARTER = 480

# Melody grid defaults: 4 steps per quarter note is a 16th-note grid.
DEFAULT_STEPS_PER_QUARTER = 4
# C2..C7 (inclusive) covers the bundled Bach soprano lines and O'Neill's tunes with room to spare.
DEFAULT_PITCH_LOW = 36
DEFAULT_PITCH_HIGH = 96

DEFAULT_VELOCITY = 80
DEFAULT_PROGRAM = 0  # General MIDI 1: Acoustic Grand Piano
