"""Exceptions raised by xbarref.

Every error caused by what a user passed in derives from :class:`XbarrefError`
(and from :class:`ValueError`), and its message names the offending argument,
HDF5 path or configuration key.
"""


class XbarrefError(ValueError):
    """Bad input: a wrong shape, a non-finite or negative value, an unknown option."""


class FileFormatError(XbarrefError):
    """An HDF5 file that is corrupt, truncated or does not follow its format contract."""


class ConvergenceError(RuntimeError):
    """An iterative or Newton solve that did not reach its tolerance."""
