"""Point the simulator's webhooks at the daemon, once, in the docker compose try-out.

The simulator then posts signed Meta-style webhooks to waba-monitor whenever a number of its
demo fleet changes, as Meta would (POST /_sim/webhooks/target, see the simulator's docs).
The app secret is the demo's; the daemon gets the same one from WABA_MONITOR_APP_SECRET.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

SIMULATOR = os.environ.get("SIMULATOR_URL", "http://simulator:9878")
TARGET = os.environ.get("WEBHOOK_URL", "http://waba-monitor:9877/webhooks/whatsapp")
APP_SECRET = os.environ["WABA_MONITOR_APP_SECRET"]

request = urllib.request.Request(  # noqa: S310 - a fixed http URL of the compose network
    f"{SIMULATOR}/_sim/webhooks/target",
    data=json.dumps({"url": TARGET, "app_secret": APP_SECRET}).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
    print(f"simulator webhooks -> {TARGET}: HTTP {response.status}", file=sys.stderr)
