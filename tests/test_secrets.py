"""No secret leaves the daemon: with a distinctive access token, app secret and webhook verify
token configured, run the faults (errors that quote the token included), webhooks good and
bad, and every endpoint; then look for the secrets in every log line (debug level, stdlib
loggers and tracebacks included), in /metrics and in every HTTP answer."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from monitor.simulator import Fault
from monitor.webhooks import sign
from tests.faultkit import captured_logs, fleet, log_events, running_daemon

ACCESS_TOKEN = "EAAGzq7Tok3nXv9Lm2Wp8Rb4Kc1"
APP_SECRET = "apS3cr3tK9f2Jd7Hs1Mq4Xn6"
VERIFY_TOKEN = "vrfyT0k4Pz8Yc3Ne5Gh7Lw"
APP_ID = "987654321012345"
SECRETS = {"access token": ACCESS_TOKEN, "app secret": APP_SECRET,
           "verify token": VERIFY_TOKEN, "app token": f"{APP_ID}|{APP_SECRET}"}
HOOK = "/webhooks/whatsapp"
ECHO = (f"upstream echoed app_secret={APP_SECRET} hub.verify_token={VERIFY_TOKEN} and "
        f"https://graph.facebook.com/v24.0/1/phone_numbers?access_token={ACCESS_TOKEN}&limit=2")


def rounds(wabas: list[str]) -> list[list[Fault]]:
    """Two rounds of faults, every WABA broken in some way each time."""
    w = wabas
    return [
        [
            Fault(w[0], "http_error", status=401, code=190, subcode=463, count=-1,
                  message=f"Error validating access token {ACCESS_TOKEN}: Session has expired"),
            Fault(w[1], "http_error", status=500, code=2, count=-1, message=ECHO),
            Fault(w[2], "reset", count=-1),
            Fault(w[3], "cursor_loop", count=-1),
            Fault(w[4], "hang", count=-1),
            Fault(w[5], "http_error", status=403, code=200, count=-1,
                  message=f"(#200) token {ACCESS_TOKEN} lacks whatsapp_business_management"),
        ],
        [
            Fault(w[0], "malformed_json", count=-1),
            Fault(w[1], "html_200", count=-1),
            Fault(w[2], "http_error", status=400, code=80008, count=-1, message=ECHO,
                  headers={"X-Business-Use-Case-Usage": json.dumps({w[2]: [{
                      "type": "whatsapp_business_management", "call_count": 100,
                      "estimated_time_to_regain_access": 0.01}]})}),
            Fault(w[3], "data_not_list", count=-1),
            Fault(w[4], "timeout", delay=2.0, count=-1),
            Fault(w[5], "http_error", status=400, code=100, subcode=33, count=-1, message=ECHO),
        ],
    ]


async def test_no_secret_in_logs_metrics_or_answers(tmp_path: Path) -> None:
    scenario = fleet(wabas=6, token=ACCESS_TOKEN)
    answers: list[tuple[str, int, str]] = []  # (what, status, headers and body)
    with captured_logs("debug") as logs:
        async with running_daemon(
            tmp_path, scenario, access_token=ACCESS_TOKEN, app_secret=APP_SECRET,
            webhook_verify_token=VERIFY_TOKEN, graph={"app_id": APP_ID},
            extra={"webhooks": {"repoll_delay": "100ms"}},
        ) as d:
            session = d.session

            async def keep(what: str, method: str, path: str, **kwargs: object) -> int:
                async with session.request(method, d.url + path, **kwargs) as resp:
                    body = await resp.text(errors="replace")
                    answers.append((what, resp.status, f"{dict(resp.headers)}\n{body}"))
                    return resp.status

            await d.all_up()
            for faults in rounds(d.waba_ids):
                for fault in faults:
                    d.world.inject_fault(fault)
                # Long enough for a poll whose batch call a hanging neighbour held up (1 s
                # timeout) to retry alone and fail in its own way.
                await asyncio.sleep(3.0)
                d.world.clear_faults()
                await d.all_up(timeout=15)

            # Webhooks: good, bad, unsigned; one carries the verify token as an event value.
            def note(event: str) -> bytes:
                return json.dumps({"object": "whatsapp_business_account", "entry": [{
                    "id": d.waba_ids[0], "time": 1, "changes": [{
                        "field": "account_update", "value": {"event": event}}]}]}).encode()

            good, odd = note("ACCOUNT_VIOLATION"), note(VERIFY_TOKEN)
            for what, body, signature, expected in [
                ("signed", good, sign(good, APP_SECRET), 200),
                ("signed, secret as event", odd, sign(odd, APP_SECRET), 200),
                ("wrong secret", good, sign(good, APP_SECRET[::-1]), 403),
                ("secret as signature", good, f"sha256={APP_SECRET}", 403),
                ("unsigned", good, None, 401),
            ]:
                headers = {"Content-Type": "application/json"}
                if signature is not None:
                    headers["X-Hub-Signature-256"] = signature
                assert await keep(what, "POST", HOOK, data=body, headers=headers) == expected
            for token, expected in [(VERIFY_TOKEN, 200), (VERIFY_TOKEN + "x", 403),
                                    (VERIFY_TOKEN[:-1], 403)]:
                params = {"hub.mode": "subscribe", "hub.verify_token": token,
                          "hub.challenge": "31337"}
                assert await keep("verify", "GET", HOOK, params=params) == expected

            for path in ("/", "/metrics", "/-/ready", "/-/healthy", "/api/v1/transitions",
                         "/api/v1/transitions?since=0&limit=5", "/api/v1/transitions?since=x",
                         "/nope", f"/?access_token={ACCESS_TOKEN}"):
                await keep(path, "GET", path)
            await keep("openmetrics", "GET", "/metrics",
                       headers={"Accept": "application/openmetrics-text; version=1.0.0",
                                "Accept-Encoding": "gzip"})
            await keep("405", "POST", "/metrics", data=ACCESS_TOKEN)
            # A request line too long to parse: the server logs the error, quoting the URL.
            reader, writer = await asyncio.open_connection("127.0.0.1", d.runtime.port)
            writer.write(f"GET /?access_token={ACCESS_TOKEN}&x={'a' * 9000} HTTP/1.1\r\n"
                         "Host: x\r\n\r\n".encode())
            await writer.drain()
            await reader.read(1000)
            writer.close()
            metrics = (await d.get("/metrics"))[1]
        text = logs.getvalue()

    events = log_events(text)
    # The run did what it should: failures of every kind, retries, webhooks, the token check.
    kinds = {e.get("kind") for e in events if e["event"] == "waba_polled"}
    assert {"auth", "transient", "network", "cursor_loop", "permission", "payload",
            "throttled", "not_found"} <= kinds
    names = {e["event"] for e in events}
    assert {"graph_retry", "webhook_rejected", "webhook_event", "webhook_verification",
            "stopped"} <= names
    assert names & {"token_checked", "token_check_failed"}  # the app token was used
    assert "[REDACTED]" in text

    for name, secret in SECRETS.items():
        leaks = [line[:300] for line in text.splitlines() if secret in line]
        assert leaks == [], f"the {name} is in the log: {leaks[:3]}"
        assert secret not in metrics, f"the {name} is in /metrics"
        for what, status, answer in answers:
            assert secret not in answer, f"the {name} is in the answer to {what} ({status})"
    assert re.search(r"access_token=(?!\[REDACTED\])", text) is None
    assert "appsecret_proof=" not in text or re.search(r"appsecret_proof=(?!\[REDACTED\])",
                                                       text) is None
