"""When a maintenance window is active: the schedule rules of one-off,
weekly and cron-started windows, over a window's own fields (no queries), so
the model can use them without importing what acts on them."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

from celery.schedules import crontab
from django.core.exceptions import ValidationError

from .choices import MaintenanceKind

MAX_DURATION_MINUTES = 7 * 24 * 60


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError({"timezone": f"Unknown time zone {name!r}."}) from exc


def parse_cron(expression: str) -> crontab:
    parts = expression.split()
    if len(parts) != 5:
        raise ValidationError({"cron": "Use five fields: minute hour day-of-month month day-of-week."})
    minute, hour, day_of_month, month, day_of_week = parts
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month,
                       day_of_week=day_of_week)
    except Exception as exc:  # celery raises ValueError or its own ParseException
        raise ValidationError({"cron": f"Invalid cron expression: {exc}"}) from exc


def validate_window(window) -> None:
    _zone(window.timezone)
    if window.kind == MaintenanceKind.ONCE:
        if not window.starts_at or not window.ends_at:
            raise ValidationError({"ends_at": "A one-off window needs starts_at and ends_at."})
        if window.ends_at <= window.starts_at:
            raise ValidationError({"ends_at": "The window must end after it starts."})
        return
    if not window.duration_minutes or not 1 <= window.duration_minutes <= MAX_DURATION_MINUTES:
        raise ValidationError({"duration_minutes": f"Between 1 and {MAX_DURATION_MINUTES} minutes."})
    if window.kind == MaintenanceKind.WEEKLY:
        days = window.weekdays
        if not isinstance(days, list) or not days or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            raise ValidationError({"weekdays": "A list of days, 0 = Monday … 6 = Sunday."})
        if window.start_time is None:
            raise ValidationError({"start_time": "A weekly window needs its start time."})
    elif window.kind == MaintenanceKind.CRON:
        parse_cron(window.cron)
    else:
        raise ValidationError({"kind": f"Unknown kind {window.kind!r}."})


def window_active_at(window, at: datetime) -> bool:
    if window.kind == MaintenanceKind.ONCE:
        return bool(window.starts_at and window.ends_at and window.starts_at <= at < window.ends_at)
    if not window.duration_minutes:
        return False
    local = at.astimezone(_zone(window.timezone))
    duration = timedelta(minutes=window.duration_minutes)
    if window.kind == MaintenanceKind.WEEKLY:
        if window.start_time is None:
            return False
        for days_back in range(0, duration.days + 2):
            day = local.date() - timedelta(days=days_back)
            if day.weekday() not in window.weekdays:
                continue
            start = datetime.combine(day, window.start_time, tzinfo=local.tzinfo)
            if start <= local < start + duration:
                return True
        return False
    if window.kind == MaintenanceKind.CRON:
        # Active when the cron fired within the last `duration`: walk back
        # minute by minute (a week at most, only for windows that exist).
        spec = parse_cron(window.cron)
        minute = local.replace(second=0, microsecond=0)
        for step in range(window.duration_minutes):
            t = minute - timedelta(minutes=step)
            if (t.minute in spec.minute and t.hour in spec.hour and t.day in spec.day_of_month
                    and t.month in spec.month_of_year and t.isoweekday() % 7 in spec.day_of_week):
                return True
        return False
    return False
