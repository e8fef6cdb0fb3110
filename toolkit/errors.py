"""The one exception type a user ever sees.

A ``DemoforgeError`` is a user's mistake or bad input. Its message is one line that names the file,
the field and what was expected; the command line prints it as is and exits non-zero. Any other
exception reaching the command line is a bug in demoforge.
"""

from __future__ import annotations


class DemoforgeError(Exception):
    """Bad input or a refused operation, explained in one line."""


class SchemaError(DemoforgeError):
    """A spec, metadata or report does not follow its JSON Schema in ``schemas/``."""


class SpecMismatch(DemoforgeError):
    """Data does not match the dataset spec (features, shapes, dtypes, fps)."""


class FormatError(DemoforgeError):
    """A file in an external format (LeRobot, robomimic, replay buffer) is missing, truncated or malformed."""


class StoreError(DemoforgeError):
    """A store cannot be opened or changed as asked."""


def one_line(exc: BaseException) -> str:
    """An exception's message squeezed onto one short line for a refusal (its type name when it has none)."""
    return " ".join(str(exc).split())[:200] or type(exc).__name__
