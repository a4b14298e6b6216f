"""Fast CPU memory: freed large blocks are kept for reuse instead of being handed back to the system.

PyTorch takes its CPU tensors from malloc. glibc serves a block above its mmap threshold with a fresh
`mmap` and returns it with `munmap` when freed, so such activations are new pages at every step,
paid for in first-touch page faults. glibc's threshold starts at 128 KiB and rises on its own (to
the size of a mapped block it frees, at most 32 MiB), and its trim threshold follows at twice that.
Fast memory fixes the mmap threshold at 32 MiB from the first allocation and the trim threshold at
2 GiB, so blocks up to 32 MiB are reused from the heap from the start and the heap is not shrunk
between steps. Blocks above 32 MiB (a batch-256 generator's 128x32x32 activations) are mapped either
way: a higher threshold reuses them too but raises peak memory by more than the 10% we allow.

Measured on 2 cores (README, "Speed options"), against glibc's untouched defaults: a CIFAR-size fast2
run (resnet20 -> resnet8, batch 256, 6 rounds) 23.1 s instead of 24.8 s (1.07x) at +3.5% peak RSS;
the WRN-40-2 -> WRN-16-1 DFAD round of `benchmarks/bench.py` 1.08x at +2.7%; `dfkd quickstart`
unchanged (49.8 / 49.3 s) at 7% less peak. How much it pays depends on the machine's page-fault cost.
`DFKD_MMAP_THRESHOLD=BYTES` and `DFKD_TRIM_THRESHOLD=BYTES` set other thresholds (for such
measurements, or a tighter memory budget).

`apply()` runs at the start of every run and teacher training (`dfkd.run.runner`, `dfkd.run.teacher`), so it
covers the CLI, the Python API, experiment workers and torchrun ranks. Off with the environment
variable DFKD_FAST_MEMORY=0 or the config key `perf.fast_memory=false`: glibc is then left as it is
(its thresholds are reset to their starting values only if this process had switched fast memory
on). A no-op, said once on stderr, where the C library is not glibc (macOS, Windows, musl).
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
            from dfkd.base import log

            log.note(f"fast CPU memory needs glibc ({_state[5:]}); allocations as usual")
        return _state
    if not enabled:
        if _state == "fast":  # set earlier in this process: back to glibc's starting values (its adaptive
            libc.mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT)  # raising, once switched off by mallopt, stays off)
            libc.mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT)
        _state = "system"  # otherwise untouched: glibc's own defaults
        return _state
    fast_mmap = int(os.environ.get("DFKD_MMAP_THRESHOLD", MMAP_THRESHOLD))  # bytes; for measurements
    fast_trim = int(os.environ.get("DFKD_TRIM_THRESHOLD", TRIM_THRESHOLD))
    if not (libc.mallopt(M_MMAP_THRESHOLD, fast_mmap) and libc.mallopt(M_TRIM_THRESHOLD, fast_trim)):
        _state = "n/a: mallopt refused the thresholds"
        return _state
    _state = "fast"
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
    threshold) with its own mmap? Always False while fast memory is on; with glibc's defaults True
    until glibc has raised its own threshold past `nbytes` (it does so when it frees such a block).
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
