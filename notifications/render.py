"""What an alert says: one plain-data context in, one `Message` out.

Every subject answers what is wrong, since when and why, so that the subject
line alone is enough at 3 a.m. The text and HTML bodies are built from the
same rows, so they never disagree; everything in the HTML is escaped.

Webhook payload
---------------

Webhooks receive this JSON document, Standard Webhooks style (the envelope's
`type` and `timestamp`, the event in `data`). Times are ISO 8601 in UTC with
a `Z`; fields never disappear, a missing value is `null`.

| field | type | meaning |
|---|---|---|
| `type` | string | `monitor.down`, `monitor.up`, `monitor.degraded`, `monitor.reminder`, `monitor.flapping`, `monitor.acknowledged`, `monitor.tls_expiring`, or `channel.test` for a test message |
| `timestamp` | string | when the event happened |
| `data.id` | string (UUID) | the notification id; also the `webhook-id` header, the same on every retry: use it to drop duplicates |
| `data.event` | string | `down`, `up`, `degraded`, `reminder`, `flapping`, `acknowledged`, `tls_expiring` or `test` |
| `data.acknowledge_url` | string or null | the signed one-click acknowledgement link, while the incident can be acknowledged |
| `data.summary` | string | the one-line human summary (the email subject without the `[Loopr]` tag) |
| `data.monitor` | object or null | `null` for test messages (and only for them) |
| `data.monitor.id` | integer | |
| `data.monitor.name` | string | |
| `data.monitor.url` | string | the checked URL or host:port (a password in it is replaced by `***`) |
| `data.monitor.status` | string | the monitor's status when the notification was made (`up`, `down`, `degraded`, ...) |
| `data.incident` | object or null | the outage this is about; `null` for test messages, and for degraded or flapping ones outside an outage |
| `data.incident.id` | integer | |
| `data.incident.started_at` | string | first failed check |
| `data.incident.confirmed_at` | string or null | when enough regions agreed it is down |
| `data.incident.resolved_at` | string or null | when it came back up |
| `data.incident.duration_seconds` | number or null | downtime so far (or in total, once resolved) |
| `data.incident.cause` | object or null | `{"kind": "status", "message": "HTTP 503, expected 200-399"}`; `kind` is the check's error kind (`status`, `timeout`, `dns`, `refused`, `tls`, `keyword`, ...) |
| `data.incident.regions` | array of strings | regions that saw the failure |
| `data.details` | string or null | free text, e.g. `latency 1840 ms above the 1000 ms threshold`; for `tls_expiring`, the expiry date and `days_left N` |
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html import escape
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from loopr.formatting import format_duration
from notifications.context import ChannelContext, IncidentContext, MonitorContext, NotificationContext
from notifications.transports.base import Message

from .choices import Event

TAG = "[Loopr]"

# Subjects stay readable in a mail client's list: long parts are cut there
# (the bodies carry them in full).
_MAX_SUBJECT_URL = 80
_MAX_SUBJECT_CAUSE = 120
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def render(context: NotificationContext) -> Message:
    alert = _Alert(context)
    if alert.event not in _EVENT_RENDERERS:
        raise ValueError(f"unknown event {alert.event!r}; expected one of {', '.join(Event.values)}")
    subject_line, headline, rows = _EVENT_RENDERERS[alert.event](alert)
    subject = _one_line(f"{TAG} {subject_line}")
    return Message(
        id=str(context["id"]),
        event=alert.event,
        subject=subject,
        text=_text_body(headline, rows, alert),
        html=_html_body(headline, rows, alert),
        payload=_payload(alert, summary=subject_line),
        created_at=alert.occurred_at,
        ack_url=alert.ack_url,
        headline=headline,
        rows=tuple(rows),
    )


# --- formatting helpers ----------------------------------------------------


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string (or datetime); None stays None."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:  # the contract is UTC; a naive value means UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def display_url(url: str) -> str:
    """The URL with any password masked: notifications go to third parties."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return url


def _one_line(text: str) -> str:
    # A newline in a monitor name would end an email header (Django refuses
    # to send it) or break a chat message's layout.
    return _CONTROL.sub(" ", text).strip()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the facts an alert is made of -----------------------------------------


class _Alert:
    """The context, parsed once: times as datetimes, missing parts as None."""

    def __init__(self, context: NotificationContext) -> None:
        self.id = str(context["id"])
        self.event = str(context.get("event") or Event.DOWN)
        self.occurred_at = parse_time(context.get("occurred_at")) or datetime.now(timezone.utc)
        self.monitor: MonitorContext | None = context.get("monitor")
        self.incident: IncidentContext | None = context.get("incident")
        self.details: str = _one_line(str(context.get("details") or ""))
        self.channel: ChannelContext | dict = context.get("channel") or {}
        incident = self.incident or {}
        self.started_at = parse_time(incident.get("started_at"))
        self.confirmed_at = parse_time(incident.get("confirmed_at"))
        self.resolved_at = parse_time(incident.get("resolved_at"))
        cause = incident.get("cause") or {}
        self.cause: str = _one_line(str(cause.get("message") or ""))
        self.regions: list[str] = [str(region) for region in incident.get("regions") or []]
        # Added at delivery, to alerts about an incident someone could still acknowledge.
        self.ack_url: str = str(context.get("ack_url") or "")

    @property
    def name(self) -> str:
        return _one_line(str((self.monitor or {}).get("name") or "unnamed monitor"))

    @property
    def url(self) -> str:
        return _one_line(display_url(str((self.monitor or {}).get("url") or "")))

    @property
    def what(self) -> str:
        """The monitor as a subject names it: `web (https://example.com)`."""
        url = _shorten(self.url, _MAX_SUBJECT_URL)
        return f"{self.name} ({url})" if url and url != self.name else self.name

    @property
    def why(self) -> str:
        return self.cause or self.details

    def with_why(self, subject: str) -> str:
        """The subject, then the cause (cut short) if there is one."""
        return f"{subject} — {_shorten(self.why, _MAX_SUBJECT_CAUSE)}" if self.why else subject

    @property
    def since(self) -> datetime:
        return self.started_at or self.occurred_at

    @property
    def downtime(self) -> float | None:
        """Seconds down: as the incident says, else as far as its times tell."""
        duration = (self.incident or {}).get("duration_seconds")
        if duration is not None:
            return float(duration)
        if self.started_at is None:
            return None
        end = self.resolved_at or self.occurred_at
        return (end - self.started_at).total_seconds()

    def common_rows(self) -> list[tuple[str, str]]:
        rows = [("Monitor", self.name)]
        if self.url:
            rows.append(("URL", self.url))
        return rows

    def incident_rows(self) -> list[tuple[str, str]]:
        rows = []
        if self.regions:
            rows.append(("Regions", ", ".join(self.regions)))
        if self.details and self.details != self.cause:
            rows.append(("Details", self.details))
        if self.incident and self.incident.get("id") is not None:
            rows.append(("Incident", f"#{self.incident['id']}"))
        return rows


Rendered = tuple[str, str, list[tuple[str, str]]]  # subject (untagged), headline, rows


def _render_down(alert: _Alert) -> Rendered:
    subject = alert.with_why(f"DOWN: {alert.what} since {format_time(alert.since)}")
    rows = alert.common_rows()
    rows.append(("Down since", format_time(alert.since)))
    if alert.confirmed_at:
        rows.append(("Confirmed", format_time(alert.confirmed_at)))
    rows.append(("Cause", alert.cause or "not recorded"))
    return subject, f"{alert.name} is DOWN.", rows + alert.incident_rows()


def _render_up(alert: _Alert) -> Rendered:
    downtime = alert.downtime
    back = f"is back after {format_duration(downtime)}" if downtime is not None else "is back up"
    rows = alert.common_rows()
    if alert.started_at:
        rows.append(("Down since", format_time(alert.started_at)))
    rows.append(("Back up at", format_time(alert.resolved_at or alert.occurred_at)))
    if downtime is not None:
        rows.append(("Downtime", format_duration(downtime)))
    if alert.cause:
        rows.append(("Cause was", alert.cause))
    return f"UP: {alert.name} {back}", f"{alert.name} {back}.", rows + alert.incident_rows()


def _render_degraded(alert: _Alert) -> Rendered:
    subject = alert.with_why(f"DEGRADED: {alert.what} since {format_time(alert.since)}")
    rows = alert.common_rows()
    rows.append(("Degraded since", format_time(alert.since)))
    if alert.cause:
        rows.append(("Cause", alert.cause))
    return subject, f"{alert.name} is DEGRADED: it answers, but not well.", rows + alert.incident_rows()


def _render_reminder(alert: _Alert) -> Rendered:
    downtime = format_duration(alert.downtime)
    subject = alert.with_why(f"REMINDER: {alert.what} still down after {downtime} (since {format_time(alert.since)})")
    rows = alert.common_rows()
    rows.append(("Down since", format_time(alert.since)))
    rows.append(("Down for", downtime))
    rows.append(("Cause", alert.cause or "not recorded"))
    return subject, f"{alert.name} is still DOWN after {downtime}.", rows + alert.incident_rows()


def _render_flapping(alert: _Alert) -> Rendered:
    how = alert.details or "keeps changing between up and down"
    rows = alert.common_rows()
    rows.append(("Seen at", format_time(alert.occurred_at)))
    status = (alert.monitor or {}).get("status")
    if status:
        rows.append(("Status now", _one_line(str(status))))
    if alert.cause:
        rows.append(("Last cause", alert.cause))
    rows += [row for row in alert.incident_rows() if row[0] != "Details"]
    headline = f"{alert.name} is FLAPPING: {how}. Alerts for it may be unreliable until it settles."
    return f"FLAPPING: {alert.what} {how}", headline, rows


def _render_acknowledged(alert: _Alert) -> Rendered:
    who = alert.details or "by someone"
    rows = alert.common_rows()
    rows.append(("Acknowledged", f"{format_time(alert.occurred_at)} {who}"))
    rows.append(("Down since", format_time(alert.since)))
    if alert.cause:
        rows.append(("Cause", alert.cause))
    rows += [row for row in alert.incident_rows() if row[0] != "Details"]
    headline = f"{alert.name} is still down, and someone is on it: acknowledged {who}."
    return f"ACKNOWLEDGED: {alert.what} {who}", headline, rows


def _render_tls_expiring(alert: _Alert) -> Rendered:
    how = alert.details or "the TLS certificate expires soon"
    rows = alert.common_rows()
    rows.append(("Certificate", how))
    rows.append(("Seen at", format_time(alert.occurred_at)))
    headline = f"{alert.name}: {how}. Renew it before it expires, or visitors will see an error."
    return f"TLS EXPIRING: {alert.what} — {how}", headline, rows


def _render_test(alert: _Alert) -> Rendered:
    name = _one_line(str(alert.channel.get("name") or ""))
    kind = _one_line(str(alert.channel.get("kind") or ""))
    source = f'channel "{name}"' if name else "Loopr"
    if name and kind:
        source += f" ({kind})"
    rows = []
    if name:
        rows.append(("Channel", name))
    rows.append(("Sent at", format_time(alert.occurred_at)))
    headline = "This is a TEST message from Loopr: the channel works. No monitor is down; nothing needs doing."
    return f"Test message from {source} — nothing is down", headline, rows


_EVENT_RENDERERS = {
    Event.DOWN: _render_down,
    Event.UP: _render_up,
    Event.DEGRADED: _render_degraded,
    Event.REMINDER: _render_reminder,
    Event.FLAPPING: _render_flapping,
    Event.ACKNOWLEDGED: _render_acknowledged,
    Event.TLS_EXPIRING: _render_tls_expiring,
    Event.TEST: _render_test,
}


# --- bodies and payload ----------------------------------------------------


def _text_body(headline: str, rows: list[tuple[str, str]], alert: _Alert) -> str:
    width = max((len(label) for label, _ in rows), default=0) + 1
    lines = [headline, ""]
    lines += [f"{label + ':':<{width}} {value}" for label, value in rows]
    if alert.ack_url:
        lines += ["", f"Acknowledge (stops reminders and escalation): {alert.ack_url}"]
    lines += ["", f"-- Loopr, notification {alert.id}"]
    return "\n".join(lines) + "\n"


def _html_body(headline: str, rows: list[tuple[str, str]], alert: _Alert) -> str:
    cells = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0">{escape(label)}</th>'
        f"<td>{escape(value)}</td></tr>"
        for label, value in rows
    )
    ack = (f'<p><a href="{escape(alert.ack_url)}">Acknowledge</a> (stops reminders and escalation)</p>'
           if alert.ack_url else "")
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f"<p><strong>{escape(headline)}</strong></p>"
        f"<table>{cells}</table>{ack}"
        f'<p style="color:#888;font-size:small">Loopr, notification {escape(alert.id)}</p>'
        "</body></html>"
    )


def _payload(alert: _Alert, summary: str) -> dict[str, Any]:
    return {
        "type": "channel.test" if alert.event == Event.TEST else f"monitor.{alert.event}",
        "timestamp": iso(alert.occurred_at),
        "data": {
            "id": alert.id,
            "event": alert.event,
            "summary": _one_line(summary),
            # A test is about no monitor, whatever placeholder the caller sent.
            "monitor": None if alert.event == Event.TEST else _monitor_payload(alert),
            "incident": None if alert.event == Event.TEST else _incident_payload(alert),
            "details": alert.details or None,
            "acknowledge_url": alert.ack_url or None,
        },
    }


def _monitor_payload(alert: _Alert) -> dict[str, Any] | None:
    if alert.monitor is None:
        return None
    monitor = alert.monitor
    url = monitor.get("url")
    return {
        "id": monitor.get("id"),
        "name": monitor.get("name"),
        "url": display_url(str(url)) if url else url,
        "status": monitor.get("status"),
    }


def _incident_payload(alert: _Alert) -> dict[str, Any] | None:
    if alert.incident is None:
        return None
    incident = alert.incident
    cause = incident.get("cause")
    duration = incident.get("duration_seconds")
    return {
        "id": incident.get("id"),
        "started_at": iso(alert.started_at),
        "confirmed_at": iso(alert.confirmed_at),
        "resolved_at": iso(alert.resolved_at),
        "duration_seconds": float(duration) if duration is not None else None,
        "cause": {"kind": cause.get("kind"), "message": cause.get("message")} if cause else None,
        "regions": list(alert.regions),
    }
