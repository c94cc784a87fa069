"""Start Prometheus and Alertmanager on 127.0.0.1 for a test, and always stop them.

Each binary runs in its own session (process group), with its output in a log file in the
test's temporary directory; stopping sends SIGTERM to the whole group, then SIGKILL. A binary
that is not installed fails the test with a message that says how to install it: these tests
never skip (CI installs the binaries).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

INSTALL_HINT = (
    "Install it (Debian/Ubuntu: `apt-get install prometheus prometheus-alertmanager`, which "
    "`./scripts/bootstrap --with-prometheus` does) or put the release binary on PATH, then run "
    "the tests again. These tests do not skip when it is missing."
)


def require_binary(*names: str) -> str:
    """The path of the first of ``names`` on PATH; fails the test clearly when none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"{' / '.join(names)} is not on PATH. {INSTALL_HINT}", pytrace=False)


def prometheus_binary() -> str:
    return require_binary("prometheus")


def alertmanager_binary() -> str:
    # Debian names it prometheus-alertmanager; the upstream release calls it alertmanager.
    return require_binary("prometheus-alertmanager", "alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- HTTP


def http_json(method: str, url: str, body: Any = None, *, form: Mapping[str, str] | None = None,
              timeout: float = 10.0) -> tuple[int, Any]:
    """One HTTP request; returns (status, decoded JSON or text). Never raises on 4xx/5xx."""
    data: bytes | None = None
    headers: dict[str, str] = {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def wait_until(condition: Callable[[], Any], *, timeout: float, interval: float = 0.25,
               message: str | Callable[[], str]) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            pytest.fail(f"after {timeout:.0f}s: {text}", pytrace=False)
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


@dataclass
class Service:
    """A running binary: its process (a session leader), its URL and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def log_tail(self, size: int = 4000) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return text[-size:]

    def stop(self) -> None:
        stop_process_group(self.proc)


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL it. Safe to call twice."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # Whatever is left in the group (the leader included) is killed.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


def _wait_ready(service: Service, timeout: float) -> bool:
    """True once ``/-/ready`` answers 200; False if the process exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            status, _ = http_json("GET", f"{service.url}/-/ready", timeout=2)
            if status == 200:
                return True
        time.sleep(0.1)
    stop_process_group(service.proc)
    pytest.fail(f"{service.name} at {service.url} was not ready after {timeout:.0f}s; "
                f"its log ends with:\n{service.log_tail()}", pytrace=False)


@contextlib.contextmanager
def run_service(name: str, argv: Callable[[int], Sequence[str]], workdir: Path, *,
                ready_timeout: float = 30.0, attempts: int = 3) -> Iterator[Service]:
    """Start ``argv(port)`` on a free port, wait for ``/-/ready``, stop it on exit.

    The free port is picked before the binary binds it, so another process may take it in
    between; a start that fails is retried on a new port.
    """
    service: Service | None = None
    try:
        for attempt in range(1, attempts + 1):
            port = free_port()
            log = workdir / f"{name}.{attempt}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    list(argv(port)), cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True)
            service = Service(name, proc, f"http://127.0.0.1:{port}", log)
            if _wait_ready(service, ready_timeout):
                break
            if attempt == attempts:
                pytest.fail(f"{name} exited with status {proc.returncode} before it was ready; "
                            f"its log ends with:\n{service.log_tail()}", pytrace=False)
            stop_process_group(proc)
        assert service is not None
        yield service
    finally:
        if service is not None:
            service.stop()


def start_prometheus(workdir: Path, config: Mapping[str, Any]) -> contextlib.AbstractContextManager[
        Service]:
    """Prometheus with ``config`` (written to workdir), on 127.0.0.1, tmp storage."""
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    storage = workdir / "prometheus-data"

    def argv(port: int) -> list[str]:
        return [binary, f"--config.file={config_file}", f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]

    return run_service("prometheus", argv, workdir)


def start_alertmanager(workdir: Path, config: Mapping[str, Any]
                       ) -> contextlib.AbstractContextManager[Service]:
    """Alertmanager with ``config``, on 127.0.0.1, no cluster listener, tmp storage."""
    binary = alertmanager_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    storage = workdir / "alertmanager-data"

    def argv(port: int) -> list[str]:
        return [binary, f"--config.file={config_file}", f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                "--log.level=warn"]

    return run_service("alertmanager", argv, workdir)


# --------------------------------------------------------------------------- Prometheus API


class QueryError(Exception):
    def __init__(self, status: int, error_type: str, error: str) -> None:
        super().__init__(f"HTTP {status} {error_type}: {error}")
        self.status = status
        self.error_type = error_type
        self.error = error


def prom_query(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query; the result vector (scalars as a one-element list). Raises QueryError."""
    status, body = http_json("POST", f"{prometheus_url}/api/v1/query", form={"query": expr})
    if not isinstance(body, dict) or body.get("status") != "success":
        error_type = body.get("errorType", "?") if isinstance(body, dict) else "?"
        error = body.get("error", body) if isinstance(body, dict) else body
        raise QueryError(status, str(error_type), str(error))
    data = body["data"]
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": data["result"]}]
    return list(data["result"])


def loaded_rule_groups(prometheus_url: str) -> list[dict[str, Any]]:
    status, body = http_json("GET", f"{prometheus_url}/api/v1/rules")
    assert status == 200, body
    return list(body["data"]["groups"])
