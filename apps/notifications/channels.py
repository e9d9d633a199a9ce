"""How a message leaves: e-mail through Django's mail framework, webhooks as signed JSON POSTs.

Webhook signature (what a receiver checks, ``webhook_verify``)::

    X-Stamm-Timestamp: <unix seconds>
    X-Stamm-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

The timestamp is signed with the body, so a captured request cannot be replayed later than the receiver's
tolerance (five minutes by default); ``hmac.compare_digest`` keeps the comparison constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage

SIGNATURE_HEADER = "X-Stamm-Signature"
TIMESTAMP_HEADER = "X-Stamm-Timestamp"
EVENT_HEADER = "X-Stamm-Event"
#: A receiver refuses a signature older (or newer) than this many seconds.
DEFAULT_TOLERANCE_SECONDS = 300


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>.<body>")."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def webhook_verify(*, secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None,
                   tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = webhook_signature(secret=secret, timestamp=timestamp, body=body)
    return hmac.compare_digest(expected, lowered.get(SIGNATURE_HEADER.lower(), ""))


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""


def webhook_post(*, url: str, secret: str, kind: str, payload: Mapping[str, Any], now: float | None = None) -> Outcome:
    """POST ``payload`` as JSON, signed; 2xx is success, anything else (or no answer) a failure to retry."""
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    timestamp = int(now if now is not None else time.time())
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": "STAMM-notifications",
        EVENT_HEADER: kind,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: webhook_signature(secret=secret, timestamp=timestamp, body=body),
    })
    try:
        with urllib.request.urlopen(request, timeout=settings.STAMM_NOTIFY_WEBHOOK_TIMEOUT) as response:  # noqa: S310
            code = response.status
    except urllib.error.HTTPError as exc:
        return Outcome(False, exc.code, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return Outcome(False, None, f"no answer: {getattr(exc, 'reason', exc)}")
    return Outcome(200 <= code < 300, code, "" if 200 <= code < 300 else f"HTTP {code}")


def email_send(*, to: str, subject: str, body: str) -> Outcome:
    """One plain-text e-mail through the configured backend (SMTP in production)."""
    try:
        sent = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to]).send()
    except Exception as exc:  # noqa: BLE001 - smtplib and sockets raise many types; each is a failed attempt
        return Outcome(False, None, f"{type(exc).__name__}: {exc}")
    return Outcome(bool(sent), None, "" if sent else "the mail backend sent nothing")
