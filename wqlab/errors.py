"""The harness's exceptions. Every message says what to do next."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every harness failure that is not a kernel behaviour verdict."""


class SetupError(HarnessError):
    """A tool or package the harness needs is missing."""


class KernelNotFoundError(HarnessError):
    """The requested kernel line or path is not installed (and cannot be)."""


class BuildError(HarnessError):
    """The module did not build."""


class VmBootError(HarnessError):
    """The VM did not reach the guest agent before its deadline."""


class VmLostError(HarnessError):
    """The VM went away (QEMU exited, kernel panic) while requests were pending."""


class GuestTimeoutError(HarnessError):
    """A guest request did not answer before its deadline."""


class GuestCommandError(HarnessError):
    """A guest request failed; ``errno`` is set when the guest saw an OSError."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
