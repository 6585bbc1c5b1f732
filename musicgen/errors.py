"""The base error of musicgen: the CLI prints its message as one line and exits non-zero."""


class MusicgenError(Exception):
    """An input or state problem the user can fix; the message names the value and the fix."""
