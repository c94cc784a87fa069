"""Endpoint protection: exporter-toolkit web.yml (TLS, bcrypt basic auth) and bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import yaml

from monitor.config import ConfigError, load_settings
from monitor.runtime import Runtime
from monitor.simulator import World, start_simulator
from monitor.webconfig import load_web_config
from tests.conftest import TOKEN, small_fleet, write_config

PASSWORD = "s3cret-pass"
BEARER = "scrape-token-xyz-123"


def web_yml(tmp_path: Path, **extra: Any) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    data = {"basic_auth_users": {"prometheus": hashed},
            "bearer_tokens": [hashlib.sha256(BEARER.encode()).hexdigest()], **extra}
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bad_web_config_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump({
        "basic_auth_users": {"a": "plaintext", "b": "$2y$10$tooshort"},
        "bearer_tokens": ["not-a-digest"],
        "tls_server_config": {"cert_file": "c.pem", "key_file": "k.pem",
                              "client_auth_type": "Whatever"},
        "bogus": 1,
    }))
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    text = str(caught.value)
    for needle in ("bogus: unknown key", "basic_auth_users.a", "basic_auth_users.b",
                   "bearer_tokens[0]",
                   "client_auth_type"):
        assert needle in text
    assert "plaintext" not in text


async def start(tmp_path: Path, web_config: Path) -> tuple[Runtime, Any, World]:
    scenario = small_fleet(numbers_per_waba=1)
    world = World(scenario)
    runner, sim_url = await start_simulator(world)
    business = scenario.businesses[0]
    settings = load_settings(write_config(tmp_path, {
        "graph": {"base_url": sim_url},
        "businesses": [{"id": business.id, "wabas": [business.wabas[0].id]}],
        "server": {"listen": "127.0.0.1:0", "web_config_file": str(web_config)},
        "state": {"directory": None},
    }), environ={})
    runtime = Runtime(settings, access_token=TOKEN, port=0)
    await runtime.start()
    return runtime, runner, world


async def test_basic_auth_and_bearer_protect_everything_but_probes_and_webhooks(
    tmp_path: Path,
) -> None:
    runtime, runner, _ = await start(tmp_path, web_yml(tmp_path))
    try:
        async with aiohttp.ClientSession() as session:
            async def status(path: str, auth: str | None = None, method: str = "GET") -> int:
                headers = {"Authorization": auth} if auth else {}
                async with session.request(method, runtime.url + path, headers=headers) as r:
                    return r.status

            assert await status("/metrics") == 401
            assert await status("/") == 401
            assert await status("/api/v1/transitions") == 401
            assert await status("/-/reload", method="POST") == 401
            assert await status("/metrics", basic("prometheus", "wrong")) == 401
            assert await status("/metrics", basic("nobody", PASSWORD)) == 401
            assert await status("/metrics", "Basic !!!notbase64") == 401
            assert await status("/metrics", basic("prometheus", PASSWORD)) == 200
            assert await status("/metrics", basic("prometheus", PASSWORD)) == 200  # cached
            assert await status("/metrics", f"Bearer {BEARER}") == 200
            assert await status("/metrics", "Bearer nope") == 401
            assert await status("/-/healthy") == 200
            # Meta cannot authenticate: the webhook answers by its own rules (no verify
            # token configured -> 403), not with 401.
            assert await status("/webhooks/whatsapp?hub.mode=subscribe") == 403
    finally:
        await runtime.stop()
        await runner.cleanup()


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


async def test_tls_serves_https_only(tmp_path: Path) -> None:
    cert, _key = make_cert(tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "cert.pem",
                                                          "key_file": "key.pem"}}))
    runtime, runner, _ = await start(tmp_path, path)
    try:
        assert runtime.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.get(runtime.url + "/-/healthy", ssl=context) as resp:
                assert resp.status == 200
            plain = runtime.url.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):
                async with session.get(plain + "/-/healthy") as resp:
                    await resp.read()
    finally:
        await runtime.stop()
        await runner.cleanup()
