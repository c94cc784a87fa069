"""TLS and authentication for the HTTP server, in Prometheus exporter-toolkit's file format.

The same ``web.yml`` a node_exporter uses works here (``tls_server_config``,
``basic_auth_users`` with bcrypt hashes), plus one extension: ``bearer_tokens``, a list of
SHA-256 hex digests of accepted bearer tokens, so no token is stored in clear. The webhook path
(Meta cannot authenticate; it is signed instead) and the health endpoints (probes) stay open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Middleware

from monitor.config import ConfigError

KEY = "server.web_config_file"
OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class TLSConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: TLSConfig | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict)
    bearer_token_sha256: frozenset[str] = frozenset()

    @property
    def auth_required(self) -> bool:
        return bool(self.basic_auth_users or self.bearer_token_sha256)


def _relative(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base.parent / path


def load_web_config(path: Path) -> WebConfig:
    """Parse and check the file; every problem is reported at once, as for the main config."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{KEY}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{KEY}: {path} is not valid YAML: {exc}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{KEY}: {path} must be a mapping")
    problems: list[str] = []
    for key in raw:
        if key not in ("tls_server_config", "basic_auth_users", "bearer_tokens",
                       "http_server_config"):
            problems.append(f"{path}: {key}: unknown key")
    tls = _parse_tls(path, raw.get("tls_server_config"), problems)
    users: dict[str, bytes] = {}
    for name, hashed in (raw.get("basic_auth_users") or {}).items():
        if not isinstance(name, str) or not isinstance(hashed, str) or not _is_bcrypt(hashed):
            problems.append(f"{path}: basic_auth_users.{name}: must be a bcrypt hash ($2y$...)")
            continue
        users[name] = hashed.encode()
    tokens: set[str] = set()
    for index, digest in enumerate(raw.get("bearer_tokens") or []):
        if not isinstance(digest, str) or len(digest) != 64 or any(
                c not in "0123456789abcdef" for c in digest.lower()):
            problems.append(f"{path}: bearer_tokens[{index}]: must be a SHA-256 hex digest")
            continue
        tokens.add(digest.lower())
    if problems:
        raise ConfigError(problems)
    return WebConfig(tls=tls, basic_auth_users=users, bearer_token_sha256=frozenset(tokens))


def _is_bcrypt(hashed: str) -> bool:
    if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
        return False
    try:
        bcrypt.checkpw(b"", hashed.encode())  # a malformed salt raises here, not per request
    except ValueError:
        return False
    return True


def startup_warnings(config: WebConfig) -> list[str]:
    if config.tls is not None and config.tls.client_auth_type in (
            "RequireAnyClientCert", "RequireAndVerifyClientCert"):
        return [f"{KEY}: client_auth_type {config.tls.client_auth_type} is enforced in the TLS "
                "handshake, before any path is known: Meta's webhooks and probes without a "
                "client certificate will fail too"]
    return []


def _parse_tls(path: Path, raw: object, problems: list[str]) -> TLSConfig | None:
    if raw is None:
        return None
    where = f"{path}: tls_server_config"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    cert, key = raw.get("cert_file"), raw.get("key_file")
    if not isinstance(cert, str) or not isinstance(key, str):
        problems.append(f"{where}: cert_file and key_file are required")
        return None
    auth = raw.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        problems.append(f"{where}.client_auth_type: one of {', '.join(_CLIENT_AUTH)}")
    version = raw.get("min_version", "TLS12")
    if version not in _TLS_VERSIONS:
        problems.append(f"{where}.min_version: one of {', '.join(_TLS_VERSIONS)}")
    ca = raw.get("client_ca_file")
    if auth in ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven") and not ca:
        problems.append(f"{where}.client_ca_file: required with client_auth_type {auth}")
    return TLSConfig(cert_file=_relative(path, cert), key_file=_relative(path, key),
                     client_auth_type=str(auth),
                     client_ca_file=_relative(path, ca) if isinstance(ca, str) else None,
                     min_version=str(version))


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file is not None:
            context.load_verify_locations(tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{KEY}: cannot load TLS certificate or key: {exc}") from None
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    return context


class Authenticator:
    """Checks Authorization headers; bcrypt is slow, so verified credentials are cached."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    def replace(self, config: WebConfig) -> None:
        self.config = config
        self._verified.clear()

    async def allowed(self, header: str | None) -> bool:
        config = self.config
        if not config.auth_required:
            return True
        if not header:
            return False
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and config.bearer_token_sha256:
            digest = hashlib.sha256(credentials.strip().encode()).hexdigest()
            return any(hmac.compare_digest(digest, known) for known in config.bearer_token_sha256)
        if scheme == "basic" and config.basic_auth_users:
            return await self._basic(credentials.strip())
        return False

    async def _basic(self, credentials: str) -> bool:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        user, sep, password = decoded.partition(":")
        hashed = self.config.basic_auth_users.get(user)
        if not sep or hashed is None:
            return False
        cache_key = hashlib.sha256(hashed + b"\0" + password.encode()).digest()
        if cache_key in self._verified:
            self._verified.move_to_end(cache_key)
            return True
        try:
            ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
        except ValueError:  # checked at load; never let a bad hash become a 500
            return False
        if ok:
            self._verified[cache_key] = None
            while len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return ok


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(auth: Authenticator, open_paths: frozenset[str]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths or await auth.allowed(
                request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(status=401, text="Unauthorized\n",
                            headers={"WWW-Authenticate": 'Basic realm="waba-monitor"'})

    return middleware
