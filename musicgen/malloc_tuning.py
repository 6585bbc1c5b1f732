"""Keep freed memory inside the process under glibc, which makes CPU training of RNNs faster.

A training step frees and allocates the same large activation and gradient buffers
again and again. glibc's malloc serves blocks above its mmap threshold with fresh mmap
calls and returns freed memory at the top of the heap to the system, so every step pays
for new pages (system calls and page faults). Telling it never to use mmap for blocks
(M_MMAP_MAX = 0) and to keep up to 1 GiB of free heap (M_TRIM_THRESHOLD, M_TOP_PAD) lets
the buffers be reused; see docs/BENCHMARKS.md for the measured effect. The same settings
can be given before a process starts as MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_ and
MALLOC_TOP_PAD_ (glibc's environment variables).

The cost is memory: the process keeps its peak heap until it exits. Set
MUSICGEN_MALLOC=default to leave glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

# Parameter numbers of mallopt, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

TRIM_THRESHOLD_BYTES = 1 << 30  # free heap kept before glibc gives memory back
TOP_PAD_BYTES = 64 << 20  # extra heap requested each time the heap grows


def keep_freed_memory() -> bool:
    """Apply the mallopt settings above to this process; return True when glibc took them."""
    if os.environ.get("MUSICGEN_MALLOC", "").lower() == "default":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library (musl) or none reachable
        return False
    version.restype = ctypes.c_char_p
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES), (M_TOP_PAD, TOP_PAD_BYTES))
    applied = all(mallopt(parameter, value) == 1 for parameter, value in settings)
    logger.debug("glibc %s malloc: mmap off, trim threshold %d, top pad %d bytes (%s)", version().decode(),
                 TRIM_THRESHOLD_BYTES, TOP_PAD_BYTES, "applied" if applied else "rejected")
    return applied
