"""Fast CPU memory: freed large blocks are kept for reuse instead of being handed back to the system.

PyTorch takes its CPU tensors from malloc. glibc serves every block above its mmap threshold (128 KiB,
raised adaptively to at most 32 MiB) with a fresh `mmap` and returns it with `munmap` when freed, so
the large activations of every forward and backward pass are new pages each time, and their
first-touch page faults are slow, most of all on virtual machines. With the mmap threshold fixed at
32 MiB (glibc's own adaptive maximum, reached at once) and the trim threshold at 2 GiB, freed
blocks stay in the heap and the next step reuses them. Measured on 2 cores (README, "Speed
options"): `dfkd quickstart` 57 s instead of 115 s at the same peak memory (951 / 945 MiB); a
CIFAR-size fast2 run (resnet20 -> resnet8, batch 256) 31 s instead of 54 s, at +34% peak memory.
A 1 GiB threshold was no faster and raised peaks further (+13% quickstart, +46% fast2). The extra
peak is the blocks kept for reuse, i.e. the speed-up itself: on that fast2 run a 16 MiB threshold
gave 31.4 s / 2,274 MiB, 8 MiB 37.5 s / 1,943 MiB, 4 MiB 53.2 s / 1,712 MiB (no gain), and the trim
threshold (16-256 MiB) changed neither. `DFKD_MMAP_THRESHOLD=BYTES` and `DFKD_TRIM_THRESHOLD=BYTES`
set other thresholds (for such measurements, or a tighter memory budget).

`apply()` runs at the start of every run and teacher training (`dfkd.runs`, `dfkd.teacher`), so it
covers the CLI, the Python API, experiment workers and torchrun ranks. Off with the environment
variable DFKD_FAST_MEMORY=0 or the config key `perf.fast_memory=false`; a no-op, said once on
stderr, where the C library is not glibc (macOS, Windows, musl).
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # bytes: blocks below this come from the heap, and freed ones are reused
TRIM_THRESHOLD = (1 << 31) - 1  # bytes of free memory at the top of the heap kept rather than returned
GLIBC_DEFAULT = 128 * 1024  # both thresholds' glibc defaults (restored when switched off)
ENV = "DFKD_FAST_MEMORY"

_libc = None
_state: str | None = None  # 'fast' | 'system' | 'n/a: ...' once apply() has run in this process
_noted = False


def _glibc():
    global _libc
    if _libc is None and sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    return _libc


def apply(enabled: bool = True) -> str:
    """Switch fast CPU memory on (or off) for this process; DFKD_FAST_MEMORY=0 forces off. Returns
    the state: 'fast', 'system' (glibc's defaults), or 'n/a: why' where it does not apply."""
    global _state, _noted
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "off", "no"):
        enabled = False
    libc = _glibc()
    if libc is None:
        _state = f"n/a: {platform.system() or sys.platform} without glibc"
        if enabled and not _noted:
            _noted = True
            sys.stderr.write(f"dfkd: note: fast CPU memory needs glibc ({_state[5:]}); allocations as usual\n")
        return _state
    fast_mmap = int(os.environ.get("DFKD_MMAP_THRESHOLD", MMAP_THRESHOLD))  # bytes; for measurements
    fast_trim = int(os.environ.get("DFKD_TRIM_THRESHOLD", TRIM_THRESHOLD))
    mmap, trim = (fast_mmap, fast_trim) if enabled else (GLIBC_DEFAULT, GLIBC_DEFAULT)
    if not (libc.mallopt(M_MMAP_THRESHOLD, mmap) and libc.mallopt(M_TRIM_THRESHOLD, trim)):
        _state = "n/a: mallopt refused the thresholds"
        return _state
    _state = "fast" if enabled else "system"
    return _state


def trim() -> None:
    """Hand the heap's free memory back to the system (malloc_trim): after an evaluation and its
    checkpoint, whose large blocks the rounds do not reuse. A no-op unless fast memory is on."""
    if _state == "fast" and _libc is not None:
        _libc.malloc_trim(0)


def state() -> str | None:
    """What `apply()` last set in this process (None: not called)."""
    return _state


def large_blocks_are_mapped(nbytes: int = 16 << 20) -> bool | None:
    """Observed behaviour, not the flag: does malloc serve a block of `nbytes` (below the fast
    threshold) with its own mmap?
    (glibc's mallinfo2 counts mapped blocks; the block is never touched, so this costs no memory.)
    None where glibc is absent."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = libc.mallinfo2().hblks
    p = libc.malloc(nbytes)
    try:
        return libc.mallinfo2().hblks > before
    finally:
        libc.free(p)
