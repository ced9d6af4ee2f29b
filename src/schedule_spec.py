"""The schedule grammar of DATASET_CONFIG: `every N units`, `every day at HH:MM [zone]`, `every <weekday> at ...`."""

import re
from dataclasses import dataclass
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
MAX_INTERVAL_S = 366 * 86400
WEEKDAYS = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
_INTERVAL = re.compile(r"^every\s+(?:(\d+)\s+)?(second|minute|hour|day|week)s?$")
_AT = re.compile(r"^every\s+(day|" + "|".join(WEEKDAYS) + r")\s+at\s+(\d{1,2}):(\d{2})(?::(\d{2}))?" r"(?:\s+(\S+))?$")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: either every N units, or a time of day (weekly or daily)."""

    text: str
    unit: str  # second, minute, hour, day, week, or a weekday name
    interval: int = 1
    at: Optional[str] = None  # "HH:MM:SS"
    timezone: Optional[str] = None

    @property
    def period_seconds(self) -> int:
        """How long a healthy dataset may go between successful runs."""
        if self.unit in WEEKDAYS:
            return _UNIT_SECONDS["week"]
        return self.interval * _UNIT_SECONDS[self.unit]


def parse_schedule(text: str) -> Schedule:
    """Parse the schedule grammar; raise ValueError with the accepted forms."""
    if not isinstance(text, str):
        raise ValueError("must be a string such as 'every day at 02:00'")
    normalized = " ".join(text.strip().split())
    lowered = normalized.lower()
    match = _INTERVAL.match(lowered)
    if match:
        interval = int(match.group(1) or 1)
        if interval < 1:
            raise ValueError("the interval must be at least 1")
        if interval * _UNIT_SECONDS[match.group(2)] > MAX_INTERVAL_S:
            raise ValueError(f"{normalized!r} is longer than a year; the longest interval is 'every 366 days'")
        return Schedule(text=normalized, unit=match.group(2), interval=interval)
    match = _AT.match(lowered)
    if match:
        day, hour, minute, second = match.group(1, 2, 3, 4)
        if int(hour) > 23 or int(minute) > 59 or int(second or 0) > 59:
            raise ValueError(f"{hour}:{minute} is not a time of day")
        timezone = None
        if match.group(5):
            # Keep the zone's spelling from the original text (zone names are
            # case-sensitive).
            timezone = normalized.split()[-1]
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {timezone!r}") from None
        at = f"{int(hour):02d}:{minute}:{second or '00'}"
        return Schedule(text=normalized, unit=day, at=at, timezone=timezone)
    raise ValueError(
        f"cannot parse {text!r}; use 'every N seconds|minutes|hours|days', "
        "'every day at HH:MM' or 'every <weekday> at HH:MM' (optionally followed by "
        "a time zone such as Europe/Berlin)"
    )
