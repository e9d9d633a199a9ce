"""The errors a caller can act on; the platform's API turns them into HTTP 400 / 404."""
from __future__ import annotations

from collections.abc import Iterable


class DriftError(ValueError):
    """Base of the errors a caller can act on (the API turns them into HTTP 400 / 404)."""


class UnknownDetector(DriftError):
    """No detector is registered under this key."""

    def __init__(self, key: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"unknown drift detector {key!r}; known: {', '.join(sorted(known))}")
        self.key = key


class ParameterError(DriftError):
    """A parameter value does not fit the detector's signature; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class DataError(DriftError):
    """The reference or test data cannot be used (shape, size, non-finite values)."""
