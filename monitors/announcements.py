"""What monitors tell the rest of Loopr: `announced`, sent when a monitor has
something to say to people (down, up, degraded, reminder, flapping).

It is sent inside the transaction that records the state change, and its
receivers write inside it too (the notifications app's outbox), so an alert
exists exactly when its state change does. Monitors name no receiver: the
apps that act on announcements build on monitors, never the reverse.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent with: monitor, event (choices.Event), incident (or None), degraded_only,
# details, at.
announced = Signal()
