"""The status page at ``/`` and its JSON twin ``/api/v1/status``: model, HTML, JSON and the
static script and style they use. Read-only over the store; served by ``monitor.web``."""

from __future__ import annotations

from importlib import resources

from monitor.statuspage.api import to_json
from monitor.statuspage.model import PageCache, StatusPage, build
from monitor.statuspage.render import DEFAULT_REFRESH, render

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
STATIC_TYPES = {"status.js": "text/javascript", "status.css": "text/css"}


def static_files() -> dict[str, bytes]:
    """The page's script and style, read once at start (package data)."""
    folder = resources.files("monitor.statuspage") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}


__all__ = [
    "CONTENT_SECURITY_POLICY", "DEFAULT_REFRESH", "STATIC_TYPES", "PageCache", "StatusPage",
    "build", "render", "static_files", "to_json",
]
