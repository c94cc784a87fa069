"""Which replica watches which business portfolio, the kube-state-metrics way.

A business belongs to the shard where ``hash(business_id) mod total == ordinal``; never a
WABA, because the registration cap is counted per business. The hash is stable across
processes, versions and machines (SHA-256, not Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.config import ConfigError, ShardingSettings

_ORDINAL = re.compile(r"-(\d+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    ordinal: int = 0
    total: int = 1

    def owns(self, business_id: str) -> bool:
        return self.total == 1 or shard_of(business_id, self.total) == self.ordinal


def shard_of(business_id: str, total: int) -> int:
    digest = hashlib.sha256(business_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % total


def resolve_shard(
    settings: ShardingSettings,
    *,
    shard: str | None = None,
    total_shards: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Shard:
    """The configured shard, with command-line overrides and ``auto`` from the pod name."""
    environ = os.environ if environ is None else environ
    total = total_shards if total_shards is not None else settings.total_shards
    raw: str | int = shard if shard is not None else settings.shard
    if raw == "auto":
        hostname = environ.get("HOSTNAME", "")
        match = _ORDINAL.search(hostname)
        if not match:
            raise ConfigError(
                f"sharding.shard: auto needs a pod name ending in -N (a StatefulSet's), "
                f"but HOSTNAME is {hostname!r}"
            )
        ordinal = int(match.group(1))
    else:
        try:
            ordinal = int(raw)
        except ValueError:
            raise ConfigError(f"sharding.shard: expected a number or auto, got {raw!r}") from None
    if total < 1:
        raise ConfigError(f"sharding.total_shards: must be at least 1, got {total}")
    if not 0 <= ordinal < total:
        raise ConfigError(
            f"sharding.shard: {ordinal} is not below sharding.total_shards ({total})"
        )
    return Shard(ordinal=ordinal, total=total)
