"""Create an output file only if no file of that name exists, even with other writers racing."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_new_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a temporary file beside `path`, then give it the name `path`.

    The name is taken with a hard link, which fails when `path` exists, so a file that
    appeared meanwhile is never replaced and no half-written file ever carries the name.
    Raises FileExistsError naming the file. On file systems without hard links the
    temporary file is copied into a file opened in exclusive-create mode.
    """
    if path.exists():
        raise FileExistsError(f"{path} already exists; delete it or choose another output folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        write(temporary)
        # mkstemp creates the file for its owner only; give it the permissions of a plain new file.
        os.chmod(temporary, 0o666 & ~_current_umask())
        _link_or_copy(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
        return
    except FileExistsError:
        raise FileExistsError(f"{destination} already exists; delete it or choose another output folder") from None
    except OSError:
        pass  # no hard links here: copy into an exclusively created file instead
    try:
        with open(source, "rb") as reader, open(destination, "xb") as writer:
            shutil.copyfileobj(reader, writer)
    except FileExistsError:
        raise FileExistsError(f"{destination} already exists; delete it or choose another output folder") from None
