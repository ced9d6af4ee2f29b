"""Validated settings: the one place where configuration is checked.

`load_settings()` reads `config.config` and either returns a complete
`Settings` or raises `ConfigError` with one line naming the dataset and key at
fault, before any phase has touched the API, the disk or the database.
"""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from src.dataset_config import (  # noqa: F401  (part of this module's surface)
    DEFAULT_SCHEDULE,
    ENTRY_KEYS,
    MODES,
    RESERVED_PREFIXES,
    Dataset,
    validate_dataset,
    validate_datasets,
)
from src.dataset_keys import IDENTIFIER
from src.dataset_keys import INDICATOR_CODE, MAX_INDICATORS  # noqa: F401  (part of this module's surface)
from src.datasets_file import configured_datasets
from src.errors import ConfigError
from src.redact import remember, remember_settings
from src.schedule_spec import WEEKDAYS, Schedule, parse_schedule  # noqa: F401  (part of this module's surface)

# GHO rows are about 600 bytes of JSON; a few carry long comments.
DEFAULT_BYTES_PER_ROW = 4096
DEFAULT_MIN_PAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    api_base_url: str
    datasets: dict
    data_dir: Path
    log_dir: Path
    page_size: int = 10000
    http_timeout: float = 60.0
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    reject_threshold: float = 0.05
    database_url: Optional[str] = None
    psql_params: dict = field(default_factory=dict)
    db_schema: Optional[str] = None
    history_days: int = 90
    history_runs: int = 1000
    reference_hours: float = 0.0  # load_settings' default is GHO_REFERENCE_HOURS=24; 0 is off
    alert_webhook: Optional[str] = None
    alert_on_recovery: bool = True
    alert_timeout: float = 20.0
    log_level: str = "INFO"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backup_count: int = 5
    extract_workers: int = 3
    page_concurrency: int = 1  # load_settings' default is GHO_PAGE_CONCURRENCY=4; 1 pages each indicator in turn
    requests_in_flight: int = 8  # requests on the wire to the API at once, in the whole process
    max_page_bytes: Optional[int] = None
    full_refresh_days: float = 7.0  # the probe may skip a download only this long after the last full one
    full_refresh: bool = False  # --full-refresh: download whatever the probe says

    @property
    def page_bytes_limit(self) -> int:
        """Largest API answer accepted, sent or decoded: GHO_MAX_PAGE_BYTES, else 4 KiB a row (16 MiB at least)."""
        return self.max_page_bytes or max(DEFAULT_MIN_PAGE_BYTES, self.page_size * DEFAULT_BYTES_PER_ROW)

    def select(self, names=None):
        """The datasets to work on: the named ones (enabled or not), else every enabled one."""
        if not names:
            return [d for d in self.datasets.values() if d.enabled]
        unknown = [n for n in names if n not in self.datasets]
        if unknown:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise ConfigError(f"unknown dataset {unknown[0]!r} (configured: {known})")
        return [self.datasets[n] for n in dict.fromkeys(names)]


def _number(variable, text, kind, minimum, maximum=None):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        wanted = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{variable}={text!r} is not {wanted}") from None
    if not math.isfinite(value):  # nan passes every comparison below
        raise ConfigError(f"{variable}={text!r} is not a finite number")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{variable}={text!r} must be {bound}")
    return value


def _libpq_ports(params) -> None:
    """PGPORT is a port, or a comma-separated list of them (one per host); libpq finds out only at connect."""
    text = params.get("port")
    if text is None:
        return
    for part in str(text).split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= 65535:
            raise ConfigError(f"PGPORT={text!r} is not a port (1-65535, or a comma-separated list of them)")


def _webhook(url):
    if url is None:
        return None
    remember(url)  # Slack's and Teams' webhook URLs carry their token
    if not re.match(r"^https?://", url) or not _has_host_and_port(url):
        raise ConfigError("GHO_ALERT_WEBHOOK must be an http:// or https:// URL with a host")
    return url


def _flag(variable, text) -> bool:
    value = str(text).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{variable}={text!r} must be true or false")
    return value in ("true", "1", "yes")


def _has_host_and_port(url) -> bool:
    try:
        parts = urlsplit(url)
        return bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port out of range, a broken IPv6 literal
        return False


def load_settings() -> Settings:
    """Read config.config and validate every value."""
    from config import config as cfg

    remember_settings(cfg.DATABASE_URL, cfg.PSQL_SERVER_PARAMS.get("password"), cfg.GHO_API_BASE_URL)
    if cfg.ENV_FILE_ERROR:
        raise ConfigError(cfg.ENV_FILE_ERROR)
    if cfg.DATASET_CONFIG_ERROR:
        raise ConfigError(cfg.DATASET_CONFIG_ERROR)
    _libpq_ports(cfg.PSQL_SERVER_PARAMS)
    if not re.match(r"^https?://", cfg.GHO_API_BASE_URL):
        raise ConfigError(f"GHO_API_BASE_URL={cfg.GHO_API_BASE_URL!r} must start with http:// or https://")
    if not _has_host_and_port(cfg.GHO_API_BASE_URL):
        raise ConfigError(f"GHO_API_BASE_URL={cfg.GHO_API_BASE_URL!r} is not a URL with a host (and a valid port)")
    if cfg.DATABASE_URL and not re.match(r"^postgres(ql)?://", cfg.DATABASE_URL):
        raise ConfigError("DATABASE_URL must be a libpq URI starting with postgresql://")
    db_schema = cfg.GHO_DB_SCHEMA.lower() if cfg.GHO_DB_SCHEMA else None
    if db_schema is not None and (
        not IDENTIFIER.match(db_schema) or db_schema.startswith("pg_") or db_schema == "information_schema"
    ):
        raise ConfigError(
            f"GHO_DB_SCHEMA={db_schema!r} must be a plain identifier, not a system schema (pg_*, information_schema)"
        )
    log_level = cfg.LOG_LEVEL.upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"GHO_LOG_LEVEL={cfg.LOG_LEVEL!r} must be DEBUG, INFO, WARNING or ERROR")
    return Settings(
        api_base_url=cfg.GHO_API_BASE_URL,
        datasets=configured_datasets(cfg, validate_datasets),
        data_dir=Path(cfg.DATA_DIR).resolve(),
        log_dir=Path(cfg.LOG_DIR).resolve(),
        page_size=_number("GHO_PAGE_SIZE", cfg.GHO_PAGE_SIZE, int, 1, 1_000_000),
        http_timeout=_number("GHO_HTTP_TIMEOUT", cfg.GHO_HTTP_TIMEOUT, float, 0.1, 86400),
        max_attempts=_number("GHO_MAX_ATTEMPTS", cfg.GHO_MAX_ATTEMPTS, int, 1, 100),
        backoff_base=_number("GHO_BACKOFF_BASE", cfg.GHO_BACKOFF_BASE, float, 0, 86400),
        backoff_max=_number("GHO_BACKOFF_MAX", cfg.GHO_BACKOFF_MAX, float, 0, 86400),
        reject_threshold=_number("GHO_REJECT_THRESHOLD", cfg.REJECT_THRESHOLD, float, 0, 1),
        database_url=cfg.DATABASE_URL,
        db_schema=db_schema,
        psql_params=dict(cfg.PSQL_SERVER_PARAMS),
        log_level=log_level,
        log_max_bytes=_number("GHO_LOG_MAX_BYTES", cfg.LOG_MAX_BYTES, int, 1024),
        log_backup_count=_number("GHO_LOG_BACKUP_COUNT", cfg.LOG_BACKUP_COUNT, int, 0, 1000),
        extract_workers=_number("GHO_EXTRACT_WORKERS", cfg.GHO_EXTRACT_WORKERS, int, 1, 16),
        page_concurrency=_number("GHO_PAGE_CONCURRENCY", cfg.GHO_PAGE_CONCURRENCY, int, 1, 32),
        requests_in_flight=_number("GHO_REQUESTS_IN_FLIGHT", cfg.GHO_REQUESTS_IN_FLIGHT, int, 1, 64),
        history_days=_number("GHO_HISTORY_DAYS", cfg.HISTORY_DAYS, int, 1, 36500),
        alert_webhook=_webhook(cfg.ALERT_WEBHOOK),
        alert_on_recovery=_flag("GHO_ALERT_RECOVERY", cfg.ALERT_RECOVERY),
        alert_timeout=_number("GHO_ALERT_TIMEOUT", cfg.ALERT_TIMEOUT, float, 1, 120),
        reference_hours=_number("GHO_REFERENCE_HOURS", cfg.REFERENCE_HOURS, float, 0, 8760),
        history_runs=_number("GHO_HISTORY_RUNS", cfg.HISTORY_RUNS, int, 10, 1_000_000),
        full_refresh_days=_number("GHO_FULL_REFRESH_DAYS", cfg.FULL_REFRESH_DAYS, float, 0, 3650),
        max_page_bytes=(
            _number("GHO_MAX_PAGE_BYTES", cfg.GHO_MAX_PAGE_BYTES, int, 65536, 1 << 34)
            if cfg.GHO_MAX_PAGE_BYTES
            else None
        ),
    )
