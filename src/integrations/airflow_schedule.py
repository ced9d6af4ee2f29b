"""Our schedule grammar (`src.schedule_spec`) in the terms of an Airflow schedule: a cron line or an interval.

Kept free of Airflow imports, so the translation is checked where Airflow is not installed. `every N
units` becomes an interval (Airflow's DeltaTriggerTimetable: every N units from the first run, as our
scheduler counts them from its start); `every day|<weekday> at HH:MM [zone]` becomes a cron line in that
zone (CronTriggerTimetable: at that time, as ours). A time with seconds has no cron line (cron counts
minutes) and is refused with one line naming the dataset, rather than run at another time.
"""

from dataclasses import dataclass
from typing import Optional

from src.dataset_keys import dataset_error
from src.schedule_spec import WEEKDAYS

_CRON_DAYS = {day: day[:3] for day in WEEKDAYS}


@dataclass(frozen=True)
class AirflowSchedule:
    """Either `cron` (with `timezone`, None for Airflow's default_timezone) or `every_seconds`."""

    cron: Optional[str] = None
    timezone: Optional[str] = None
    every_seconds: Optional[int] = None


def translate(dataset) -> AirflowSchedule:
    """The Airflow schedule of a dataset's `schedule`, or a ConfigError naming the dataset."""
    spec = dataset.schedule
    if spec.at is None:
        return AirflowSchedule(every_seconds=spec.period_seconds)
    hour, minute, second = (int(part) for part in spec.at.split(":"))
    if second:
        raise dataset_error(
            dataset.name,
            "schedule",
            f"{spec.text!r} cannot be an Airflow schedule: cron has no seconds "
            f"(use 'at {hour:02d}:{minute:02d}', or run this dataset with start_scheduler.py)",
        )
    days = "*" if spec.unit == "day" else _CRON_DAYS[spec.unit]
    return AirflowSchedule(cron=f"{minute} {hour} * * {days}", timezone=spec.timezone)
