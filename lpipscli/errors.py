"""One error hierarchy; each class carries the exit code the CLI maps it to.

Exit codes: 0 success, 1 a quality gate failed, 2 bad usage or input, 3 runtime failure
(weights, device), 4 some pairs or metrics could not be scored (rows written; ``--allow-failed``
accepts them), 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3
EXIT_PAIRS_FAILED = 4
EXIT_INTERRUPTED = 130


class LpipsCliError(Exception):
    """Base class: a one-line, user-facing message and an exit code."""

    exit_code = EXIT_USAGE


class UsageError(LpipsCliError):
    """Options that contradict each other or name unknown things."""


class PairingError(LpipsCliError):
    """Inputs that cannot be paired safely (unmatched files, duplicate stems, empty folders)."""


class DecodeError(LpipsCliError):
    """A file that cannot be decoded into an image of a supported kind."""

    def __init__(self, path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class MetricInputError(LpipsCliError, ValueError):
    """Inputs a metric cannot score (too small, mismatched shapes, wrong dtype)."""


class OutputError(LpipsCliError):
    """An output file that cannot be written."""


class WeightsError(LpipsCliError):
    """Weight files missing, unverified or unloadable."""

    exit_code = EXIT_RUNTIME


class DeviceError(LpipsCliError):
    """The requested device is not available or failed."""

    exit_code = EXIT_RUNTIME
