"""Generic webhooks: the notification's JSON payload (schema in
`notifications/render.py`), signed the Standard Webhooks way.

Headers: `webhook-id` (the notification id, the same on every retry, so a
receiver can drop duplicates), `webhook-timestamp` (Unix seconds of this
attempt, which receivers compare with their clock to refuse replays) and,
when the channel has a secret, `webhook-signature` ("v1,<base64 HMAC-SHA256>"
of "<id>.<timestamp>.<body>").
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

from .base import Message, TransportError
from .http import HttpTransport, dump_json

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class WebhookTransport(HttpTransport):
    secret_label = "signing secret"
    secret_generated = True

    def body(self, message: Message) -> bytes:
        return dump_json(message.payload)

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        headers = super().headers(message, body)
        # The attempt's time, not the event's: receivers refuse old timestamps.
        now = datetime.now(timezone.utc)
        headers["webhook-id"] = message.id
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        if self.secret:
            headers["webhook-signature"] = self._signer().sign(message.id, now, body.decode("ascii"))
        return headers

    def _signer(self) -> Webhook:
        key = self.secret.removeprefix(SECRET_PREFIX)
        try:
            # standardwebhooks skips characters that are not base64; a typo
            # would then sign with a key the receiver does not have.
            if not base64.b64decode(key + "=" * (-len(key) % 4), validate=True):
                raise ValueError("empty")
        except (binascii.Error, ValueError):
            raise TransportError(
                "invalid signing secret: expected whsec_ followed by base64", permanent=True
            ) from None
        return Webhook(self.secret)
