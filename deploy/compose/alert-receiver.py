"""A stand-in for your pager in the docker compose try-out: prints what Alertmanager sends.

deploy/alertmanager/alertmanager.yml posts every notification to http://127.0.0.1:9095/alerts.
This process shares the alertmanager container's network (network_mode: service:alertmanager),
so that unchanged configuration reaches it. Watch it with

    docker compose -f deploy/docker-compose.yml logs -f alert-receiver
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        for alert in payload.get("alerts", []):
            labels = alert.get("labels", {})
            summary = alert.get("annotations", {}).get("summary", "")
            print(f"{alert.get('status', '?'):8} {labels.get('severity', '-'):8} "
                  f"{labels.get('alertname', '?')}: {summary}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per alert above is enough."""


if __name__ == "__main__":
    print("alert receiver listening on 127.0.0.1:9095", file=sys.stderr, flush=True)
    HTTPServer(("127.0.0.1", 9095), Handler).serve_forever()
