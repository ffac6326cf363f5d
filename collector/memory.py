"""Memory that the job's threads freed, given back to the system.

Each training's result is taken up in a thread, as are the chart-list reads: glibc gives such
threads arenas of their own and keeps what they free for later use, so the job's resident size
grew with the trainings (bench/soak.py: 104 charts retrained every 120 steps, 73.8 MiB after 31
trainings, 68.0 with the memory given back). ``malloc_trim`` returns the free pages of every
arena; other C libraries (musl) have none, and keep their own ways.
"""
import ctypes
import sys


def _malloc_trim():
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim   # the process's own C library
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def give_back():
    """Return the C library's free memory to the system; whether it could be asked to."""
    if _TRIM is None:
        return False
    try:
        _TRIM(0)
    except Exception:   # never a reason for the job to fail
        return False
    return True
