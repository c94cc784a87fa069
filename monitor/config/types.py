"""Value types and validators shared by the settings models.

Each validator raises ValueError with an operator-facing message, so that pydantic reports it
at the key's path; none echoes a value that might be a secret.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator

__all__ = [
    "STATE_DIRECTORY_NAME",
    "ApiVersion",
    "BaseUrl",
    "CallbackUrl",
    "Duration",
    "FilePath",
    "Float",
    "Int",
    "ListenAddress",
    "NumericId",
    "Peers",
    "PositiveDuration",
    "RegistrationCap",
    "ShardOrdinal",
    "WebhookPath",
    "conflicts",
    "default_state_directory",
    "format_duration",
    "lower",
    "numeric_id",
    "parse_duration",
    "short",
    "split_listen",
]


def short(value: object) -> str:
    """repr() capped in length, for echoing a bad (non-secret) value back in a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- durations -------------------------------------------------------------------------------

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE_SECONDS = re.compile(rf"[+-]?{_NUMBER}")
_DURATION = re.compile(rf"[+-]?(?:{_NUMBER}(?:ms|s|m|h))+")
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HELP = "use seconds or a duration such as 500ms, 2s, 5m, 1h, 1h30m"


def parse_duration(value: object) -> float:
    """Turn "500ms", "2s", "5m", "1h30m", a number of seconds or a timedelta into seconds.

    Raises ValueError (negative, non-finite or malformed), so pydantic reports it at the key.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, not a boolean; {_DURATION_HELP}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _BARE_SECONDS.fullmatch(text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(
                float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)
            )
            if text.startswith("-"):
                seconds = -seconds
        else:
            raise ValueError(f"invalid duration {short(value)}: {_DURATION_HELP}")
    else:
        raise ValueError(f"expected a duration, got {type(value).__name__}; {_DURATION_HELP}")
    if not math.isfinite(seconds):
        raise ValueError("duration must be finite")
    if seconds < 0:
        raise ValueError(f"duration must not be negative (got {short(value)})")
    return seconds


def _positive(seconds: float) -> float:
    """Reject zero for intervals and timeouts, where zero would mean a busy loop."""
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds the way a user would write them ("15s", "1h30m", "500ms")."""
    if seconds < 1 and seconds != 0:
        millis = seconds * 1000
        return f"{millis:g}ms"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


# Seconds as a float; accepts "500ms", "2s", "5m", "1h", "1h30m", numbers and timedeltas.
Duration = Annotated[float, BeforeValidator(parse_duration)]
# A Duration that must be greater than zero (intervals, timeouts).
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


# --- small reusable field types --------------------------------------------------------------


def _no_bool(value: object) -> object:
    """YAML turns yes/no/on/off into booleans; never let one pass silently as 1 or 0."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


def numeric_id(value: object) -> str:
    """Graph IDs are digit strings; YAML may hand us an int, which we turn back into one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return value.strip()
    raise ValueError(f"must be a numeric ID (digits only), got {short(value)}")


def _registration_cap(value: object) -> object:
    """Accept "auto" or an integer >= 1, with one clear message instead of a union's two."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        number = int(value)
    if number is None or number < 1:
        raise ValueError(f'must be "auto" or an integer >= 1, got {short(value)}')
    return number


def _shard(value: object) -> object:
    """Accept auto (from the pod name) or an ordinal; refuse booleans like other numbers."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return _no_bool(value)


def _file_path(value: object) -> object:
    """An empty path would silently mean the current directory."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty (use null to unset)")
    return value


def lower(value: object) -> object:
    """Accept INFO / Json from environment variables as well as lowercase."""
    return value.strip().lower() if isinstance(value, str) else value


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
NumericId = Annotated[str, BeforeValidator(numeric_id)]
RegistrationCap = Annotated[Literal["auto"] | int, BeforeValidator(_registration_cap)]
ShardOrdinal = Annotated[Literal["auto"] | int, BeforeValidator(_shard)]
FilePath = Annotated[Path, BeforeValidator(_file_path)]


# --- listen addresses ------------------------------------------------------------------------

_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_LISTEN_HELP = "must be host:port, e.g. 0.0.0.0:9877 or [::]:9877"


def split_listen(value: str) -> tuple[str, int]:
    """Split host:port (IPv6 in brackets); raises ValueError with an operator-facing message."""
    bracketed = re.fullmatch(r"\[([^\]]*)\]:([0-9]+)", value)
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{_LISTEN_HELP}, got {short(value)}")
        if ":" in host:
            raise ValueError(
                f"IPv6 addresses must be in brackets, e.g. [::]:9877, got {short(value)}"
            )
        labels = host.rstrip(".").split(".")
        if labels[-1].isdigit():
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not a valid IPv4 address") from None
        elif len(host) > 253 or not all(_HOSTNAME_LABEL.fullmatch(label) for label in labels):
            raise ValueError(f"{short(host)} is not a valid host name or address")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {short(port_text)}")
    return host, int(port_text)


def _check_listen(value: str) -> str:
    """Parse once at load, so that ServerSettings.host and .port cannot fail later."""
    value = value.strip()
    split_listen(value)
    return value


def _check_base_url(value: str) -> str:
    """Catch typos early; the value is not echoed because it might carry credentials."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://graph.facebook.com")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    return url


def _check_callback_url(value: str) -> str:
    """Meta's callback URL may carry a secret in its query string: checked, never echoed."""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://monitor.example.com/webhooks")
    return url


def _check_api_version(value: str) -> str:
    """A wrong version string would make every request fail at run time."""
    if not re.fullmatch(r"v\d+\.\d+", value):
        raise ValueError(f"must look like v24.0 (^v\\d+\\.\\d+$), got {short(value)}")
    return value


def _check_webhook_path(value: str) -> str:
    """The receiver shares the server with /metrics, probes and the API; no clash allowed."""
    if not value.startswith("/") or any(ch.isspace() for ch in value) or "?" in value:
        raise ValueError("must be an absolute URL path such as /webhooks/whatsapp")
    reserved = ("/metrics", "/-/", "/api/")
    if value == "/" or any(value.startswith(r) for r in reserved):
        raise ValueError("must not clash with /, /metrics, /-/ or /api/")
    return value


def _check_peers(value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
    """Shard peers: one URL template with {shard}, or one http(s) URL per ordinal."""
    urls = [value] if isinstance(value, str) else list(value or ())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"peer URLs must start with http:// or https://, got {url!r}")
    if isinstance(value, str) and "{shard}" not in value:
        raise ValueError("a peer URL template must contain {shard}")
    return value


ListenAddress = Annotated[str, AfterValidator(_check_listen)]
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
CallbackUrl = Annotated[str, AfterValidator(_check_callback_url)]
ApiVersion = Annotated[str, AfterValidator(_check_api_version)]
WebhookPath = Annotated[str, AfterValidator(_check_webhook_path)]
Peers = Annotated[str | tuple[str, ...] | None, AfterValidator(_check_peers)]


# --- state location --------------------------------------------------------------------------

STATE_DIRECTORY_NAME = "waba-monitor"


def default_state_directory(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/waba-monitor, else ~/.local/state/waba-monitor; never the cwd.

    A relative XDG_STATE_HOME is ignored, as the XDG Base Directory spec says. HOME comes from
    ``environ`` when it has one, else from the process (``Path.home()``).
    """
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / STATE_DIRECTORY_NAME
    home = environ.get("HOME", "")
    root = Path(home) if home and os.path.isabs(home) else Path.home()
    return root / ".local" / "state" / STATE_DIRECTORY_NAME


# --- business clashes ------------------------------------------------------------------------


def _lenient_id(value: object) -> str | None:
    """The ID if it is one, else None: conflicts are checked even where IDs are invalid."""
    try:
        return numeric_id(value)
    except ValueError:
        return None


def conflicts(
    businesses: Iterable[tuple[object, object]],
) -> list[tuple[tuple[int | str, ...], str]]:
    """Duplicate business IDs and WABAs listed twice, as (location under businesses, message).

    Works on raw (id, wabas) pairs too, so that a file with a bad entry still gets every clash
    reported in the same run.
    """
    found: list[tuple[tuple[int | str, ...], str]] = []
    first_id: dict[str, int] = {}
    first_waba: dict[str, str] = {}
    for index, (raw_id, raw_wabas) in enumerate(businesses):
        business_id = _lenient_id(raw_id)
        if business_id is not None and business_id in first_id:
            found.append(
                (
                    (index, "id"),
                    f"duplicate business id {business_id} "
                    f"(also businesses[{first_id[business_id]}].id)",
                )
            )
        elif business_id is not None:
            first_id[business_id] = index
        wabas = raw_wabas if isinstance(raw_wabas, list | tuple) else ()
        for waba_index, raw_waba in enumerate(wabas):
            waba = _lenient_id(raw_waba)
            here = f"businesses[{index}].wabas[{waba_index}]"
            if waba is not None and waba in first_waba:
                found.append(
                    (
                        (index, "wabas", waba_index),
                        f"WABA {waba} is also listed at {first_waba[waba]}; "
                        "a WABA belongs to one business",
                    )
                )
            elif waba is not None:
                first_waba[waba] = here
    return found
