"""Sharding: which replica watches which business (``shard``), and passing a webhook that
reached the wrong replica on to its peers (``forward``, imported from there: it needs aiohttp,
and most users of this package need only the hash)."""

from __future__ import annotations

from monitor.sharding.shard import Shard, resolve_shard, shard_of

__all__ = ["Shard", "resolve_shard", "shard_of"]
