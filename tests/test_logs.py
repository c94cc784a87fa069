"""Secrets never reach a log line, whatever shape they arrive in."""

import io
import json
import logging

import structlog

from monitor.logs import REDACTED, configure_logging, redact, register_secret

TOKEN = "EAAJBsecretTOKENvalue1234567890"


def test_redact_registered_secret_and_query_strings() -> None:
    register_secret(TOKEN)
    assert TOKEN not in redact(f"token is {TOKEN}")
    assert redact("https://x/y?access_token=abc.def&limit=5") == (
        f"https://x/y?access_token={REDACTED}&limit=5")
    assert redact("Authorization: Bearer abc.def-ghi") == f"Authorization: Bearer {REDACTED}"


def test_structlog_and_stdlib_events_are_redacted_in_json() -> None:
    register_secret(TOKEN)
    stream = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=stream)
    log = structlog.get_logger("t")
    log.info("event", url=f"https://graph/v24.0/1?access_token={TOKEN}", nested={"t": [TOKEN]})
    try:
        raise RuntimeError(f"failed with {TOKEN}")
    except RuntimeError:
        log.exception("boom")
    logging.getLogger("aiohttp.client").warning("stdlib says %s", TOKEN)
    out = stream.getvalue()
    assert TOKEN not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["event"] for line in lines][:2] == ["event", "boom"]
    assert REDACTED in lines[1]["exception"]
    assert any("stdlib says" in line["event"] for line in lines)
