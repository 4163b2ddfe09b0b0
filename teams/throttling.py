"""The API's rates (DRF's scoped throttles, `DEFAULT_THROTTLE_RATES`)
applied outside the API too: making tokens or sending invitations in the
admin counts against the same per-user budget as through the API."""

from __future__ import annotations

from types import SimpleNamespace

from rest_framework.throttling import ScopedRateThrottle

INVITATIONS = "invitation-create"
TOKENS = "token-create"


def wait_for(request, scope: str) -> float | None:
    """None if the user may do it once more now (and counts it); else the seconds to wait."""
    throttle = ScopedRateThrottle()
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):
        return None
    return throttle.wait() or 0.0
