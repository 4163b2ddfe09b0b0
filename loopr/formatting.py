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
