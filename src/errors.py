"""The exception tree of gho-etl.

Every failure a user can meet is one of these, carrying a message that is fit
to print as the single line a script ends with. Scripts map the classes to exit
codes (`EXIT_CODE`), so callers can tell a bad configuration from a down API.
"""


class GhoEtlError(Exception):
    """Base class: anything the pipeline reports as a clean one-line failure."""

    exit_code = 1


class ConfigError(GhoEtlError):
    """The configuration is invalid; nothing was done."""

    exit_code = 2


class AlreadyRunning(GhoEtlError):
    """Another process holds the lock for this work; nothing was done."""

    exit_code = 3


class ExtractError(GhoEtlError):
    """The API could not deliver the data (after retries, where retrying helps)."""


class IndicatorNotFound(ExtractError):
    """The API answered 404 for an indicator code."""


class TransformError(GhoEtlError):
    """A landing batch could not be turned into staging data."""


class TooManyRejects(TransformError):
    """More rows were rejected than the configured share allows."""


class LoadError(GhoEtlError):
    """A staging batch could not be applied to the database."""


class DatabaseUnavailable(LoadError):
    """The database could not be reached or started."""
