"""Text for people, shared by the alerts and the admin pages."""

from __future__ import annotations

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def format_duration(seconds: float | None) -> str:
    """A human duration with its two largest units: "4 min 12 s", "1 h 5 min", "2 d 3 h"."""
    if seconds is None:
        return "an unknown time"
    total = max(0, round(seconds))
    if total == 0:
        return "less than a second"
    counts = []
    for name, size in _UNITS:
        count, total = divmod(total, size)
        counts.append((count, name))
    first = next(i for i, (count, _) in enumerate(counts) if count)
    shown = [f"{count} {name}" for count, name in counts[first : first + 2] if count]
    return " ".join(shown)


def excerpt(value: object, limit: int = 200) -> str:
    """A log-safe excerpt of any value: at most `limit` characters of its text
    (its repr unless it is a string), and its full length when cut. A 30 MB
    field sent by a rogue node must not become a 30 MB log line."""
    if isinstance(value, (bytes, bytearray)):
        text, size = repr(bytes(value[: limit * 2])), len(value)
    elif isinstance(value, str):
        text, size = value, len(value)
    else:
        text = _bounded_repr(value, limit)
        size = len(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({size} chars)"


def _bounded_repr(value: object, limit: int) -> str:
    # reprlib bounds every level, so even a huge nested value costs little.
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = r.maxlong = limit
    r.maxlist = r.maxdict = r.maxtuple = r.maxset = 20
    r.maxlevel = 4
    return r.repr(value)
