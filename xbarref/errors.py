"""Exceptions raised by xbarref: one hierarchy.

``XbarrefError`` (a ``ValueError``)
    Bad input: what a user passed in. The message names the offending argument, HDF5
    path or configuration key (library code names arguments, never command-line flags).

    ``FileFormatError``
        An HDF5 file that is corrupt, truncated, fails its checksum, or does not follow
        its format contract; the message names the file and the HDF5 path.
    ``SizeLimitError``
        A declared size (array shape, count of settings, seeds, nodes...) above the
        limit a command accepts; checked before anything is read or allocated.
    ``OutputExistsError``
        An output path that exists while overwriting was not asked for.

``ComputationError`` (a ``RuntimeError``)
    A computation that could not deliver a result to its stated accuracy.

    ``ConvergenceError``
        An iterative or Newton solve whose achieved residual is above its tolerance
        (after every fall-back).
    ``SpiceError``
        ngspice is missing, failed, or wrote no usable operating point.

``Terminated`` (a ``KeyboardInterrupt``)
    Raised by the ``xbarref`` command's SIGTERM handler, so that every clean-up path
    that handles Ctrl-C also handles SIGTERM (exit status 143 instead of 130).

:data:`ERRORS` is the tuple of the two bases a caller catches to report any of these.
"""


class XbarrefError(ValueError):
    """Bad input: a wrong shape, a non-finite or negative value, an unknown option."""


class FileFormatError(XbarrefError):
    """An HDF5 file that is corrupt, truncated or does not follow its format contract."""


class SizeLimitError(XbarrefError):
    """A declared size above a limit; raised before the data is read or allocated."""


class OutputExistsError(XbarrefError):
    """An output path exists and overwriting it was not asked for.

    Attributes
    ----------
    path : str
        The existing output.
    """

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class ComputationError(RuntimeError):
    """A computation that did not reach its stated accuracy."""


class ConvergenceError(ComputationError):
    """An iterative or Newton solve that did not reach its tolerance."""


class SpiceError(ComputationError):
    """ngspice is missing, failed, or wrote no usable operating point."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (raised by the ``xbarref`` command's handler).

    A subclass of ``KeyboardInterrupt`` so that code cleaning up after Ctrl-C cleans up
    after SIGTERM the same way.
    """


#: The base classes of every xbarref error (catch these to report any of them).
ERRORS = (XbarrefError, ComputationError)
