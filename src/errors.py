"""The exception tree of gho-etl: every failure a user can meet, and what it means for a retry.

Each class carries a message fit to print as the single line a script ends
with, its exit code and whether it is transient. The code and the flag live on
the classes only: scripts map an error to `exit_code`; `transient` is true
where a later try may succeed without anyone changing anything, so whatever
retries a failed phase (an orchestrator) retries those and fails the rest at
once.

  GhoEtlError                      exit 1
    ConfigError                    exit 2  bad usage or configuration; nothing was done
    AlreadyRunning                 exit 3  transient: another process holds the work
    ExtractError                           the source could not deliver the data
      IndicatorNotFound                    the source has no such indicator
      SourceUnavailable                    transient: retries used up, or told to wait long
      SourceChanged                        transient: the rows changed while they were paged
    TransientAnswer                        transient: one answer worth asking for again
    TransformError                         a landing batch cannot become staging
      TooManyRejects
    LoadError                              a staging batch cannot be applied
      DatabaseUnavailable                  transient: the database cannot be reached
      DatabaseBusy                         transient: out of resources, a deadlock, shutting down
      DatabaseLimit                        a value or table PostgreSQL cannot hold (SQLSTATE class 54)
    StorageError                           the data folder cannot be written (read-only, full, denied)
      StorageUnavailable                   transient: the object store (GHO_HANDOFF_URL) cannot be reached
"""

EXIT_OK = 0


class GhoEtlError(Exception):
    """Base class: anything the pipeline reports as a clean one-line failure."""

    exit_code = 1
    transient = False


class ConfigError(GhoEtlError):
    """The configuration or the command line is invalid; nothing was done."""

    exit_code = 2


class AlreadyRunning(GhoEtlError):
    """Another process holds the lock for this work; nothing was done."""

    exit_code = 3
    transient = True


class ExtractError(GhoEtlError):
    """The source could not deliver the data (subclasses say whether asking again later may help)."""


class IndicatorNotFound(ExtractError):
    """The source answered that an indicator code does not exist (HTTP 404 at GHO)."""


class SourceUnavailable(ExtractError):
    """The source kept failing until the retries were used up, or asked to wait far too long."""

    transient = True


class SourceChanged(ExtractError):
    """The source's rows changed while a batch was paged: the batch starts over (and fails after a few)."""

    transient = True


class RangesNotHonoured(SourceChanged):
    """The API ignored the upper bound of an Id range: the batch starts over, its pages one after another.

    `carry` is what the new attempt's paging state keeps (`src.extract.batches.start_over`).
    """

    carry = {"page_concurrency": 1}


class TransientAnswer(GhoEtlError):
    """One answer worth asking for again: raised and caught inside a source's retry loop.

    A caller's check raises it too, for an answer that is well formed but not
    believable (an empty page where the source still counts rows).
    """

    transient = True

    def __init__(self, reason, retry_after=None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TransformError(GhoEtlError):
    """A landing batch could not be turned into staging data."""


class TooManyRejects(TransformError):
    """More rows were rejected than the configured share allows."""


class LoadError(GhoEtlError):
    """A staging batch could not be applied to the database."""


class DatabaseUnavailable(LoadError):
    """The database could not be reached or started."""

    transient = True


class DatabaseBusy(LoadError):
    """The database refused for now: out of disk or memory, too many connections, a deadlock, a shutdown."""

    transient = True


class DatabaseLimit(LoadError):
    """Something PostgreSQL cannot hold: an index entry too large, too many columns, a name too long."""


class StorageError(GhoEtlError):
    """The data folder (landing, staging, rejects) cannot be written: read-only, full or denied."""


class StorageUnavailable(StorageError):
    """The object store holding the hand-off files cannot be reached, or failed after its retries."""

    transient = True
