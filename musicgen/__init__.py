"""musicgen: learn melodies from MIDI files with recurrent networks and write new ones."""

__version__ = "0.1.0"
