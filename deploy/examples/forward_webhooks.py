"""Forward Meta's non-message webhooks from a messaging backend to waba-monitor.

For the topology where the messaging backend is the app's default callback URL: account,
security and template fields are delivered only there, so the backend passes every
notification that is not message traffic on to the daemon, **unchanged** — the raw body and
its ``X-Hub-Signature-256`` header — and the daemon checks the signature with the app secret.

Copy ``forward_if_not_traffic`` into the backend's webhook handler and call it with the raw
request body and the signature header, after answering Meta (it must not delay the 200).
Standard library only; no secret is needed here, and nothing is logged.
"""

from __future__ import annotations

import json
import urllib.request

# Fields that are message traffic: the backend's own business, never forwarded.
TRAFFIC_FIELDS = frozenset({
    "messages", "message_echoes", "smb_message_echoes", "calls", "consumer_profile",
    "messaging_handovers", "group_lifecycle_update", "group_participants_update",
    "group_settings_update", "group_status_update", "smb_app_state_sync", "history",
    "account_settings_update",
})


def is_traffic_only(body: bytes) -> bool:
    """True when every change of the notification is message traffic (or it is unreadable:
    the daemon would refuse it anyway)."""
    try:
        doc = json.loads(body)
        fields = {change["field"] for entry in doc["entry"] for change in entry["changes"]}
    except (ValueError, KeyError, TypeError):
        return True
    return fields <= TRAFFIC_FIELDS


def forward_if_not_traffic(body: bytes, signature: str, daemon_url: str,
                           timeout: float = 5.0) -> int | None:
    """POST the body, unchanged, to the daemon's webhook URL unless it is only traffic.

    Returns the daemon's status code, or None when nothing was forwarded.
    """
    if is_traffic_only(body):
        return None
    request = urllib.request.Request(  # noqa: S310 - the daemon's URL comes from your config
        daemon_url, data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        status: int = response.status
        return status
