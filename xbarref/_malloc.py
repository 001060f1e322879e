"""Allocator settings for processes that run heavy NumPy inference (Linux / glibc only).

A batch of convolution inputs is an im2col matrix of up to a few hundred MB, and the
forward pass creates and frees several temporaries of that size per layer. With glibc's
defaults every one of them above the (dynamic) mmap threshold is a fresh ``mmap`` and is
given back with ``munmap`` when freed, so each batch page-faults its memory in again:
on the Fashion-MNIST CNN that kernel time was about half of the chip forward time.
:func:`tune_allocator` asks glibc (``mallopt``) to serve such blocks from the heap and to
keep freed memory for the next batch:

- ``M_MMAP_THRESHOLD`` 1 GiB: blocks below it come from the heap, not from ``mmap``;
- ``M_TRIM_THRESHOLD`` 1 GiB: free memory at the top of the heap is given back to the
  system only beyond 1 GiB;
- ``M_TOP_PAD`` 256 MiB: the heap grows in steps of at least that much.

The process keeps up to about its peak memory plus 1 GiB. Only where the allocator
lives changes, never a computed number. It is applied by the ``xbarref`` command
(:func:`xbarref.cli.main`) and in the local worker processes of :mod:`xbarref.sweep`;
it is a no-op elsewhere: on other systems, without glibc's ``mallopt``, or when the
user sets the allocator up through ``GLIBC_TUNABLES`` or a ``MALLOC_*_`` variable.
"""

from __future__ import annotations

import os
import sys

__all__ = ["tune_allocator"]

# mallopt parameter numbers of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

_SETTINGS = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 256 << 20))
_USER_VARS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
              "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_applied = None


def tune_allocator():
    """Apply the allocator settings of the module docstring once per process.

    Returns
    -------
    bool
        True when glibc accepted every setting (now or at an earlier call); False when
        nothing was changed (not Linux, no ``mallopt``, user settings present, refused).
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _USER_VARS):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # no C library handle, or not glibc (e.g. musl)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = all([mallopt(param, value) == 1 for param, value in _SETTINGS])
    return _applied
