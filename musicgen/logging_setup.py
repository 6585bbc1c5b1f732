"""Configure `logging` for the command line: messages on stderr, debug detail under --verbose."""

from __future__ import annotations

import logging
import sys


def configure_logging(verbose: bool) -> None:
    # Names of files from the wild may not fit the console's encoding (LC_ALL=C,
    # PYTHONIOENCODING=ascii); escape such characters instead of raising.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s" if verbose else "%(message)s"))
    handler.set_name("musicgen")
    root = logging.getLogger()
    # Replace the handler of an earlier call in the same process (tests call the CLI many
    # times), but keep handlers that others installed, such as pytest's log capture.
    root.handlers[:] = [existing for existing in root.handlers if existing.get_name() != "musicgen"]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Libraries below musicgen stay at warning level even under --verbose.
    for name in ("matplotlib", "PIL", "music21"):
        logging.getLogger(name).setLevel(logging.WARNING)
