"""The one owner of what is watched: which businesses and WABAs, and why each is there.

The desired set of WABAs is computed from four inputs and nothing else: the configuration,
this process's shard, the results of discovery, and the state restored at start. The
scheduler turns that set into jobs; the store holds the data of exactly that set.

Restored state is trusted only as far as the current configuration vouches for it: a WABA from
the state file is watched (provisionally, until the business that found it discovers again)
only while that business is still configured and this shard owns the WABA's owner. A WABA of
a business no longer configured is never polled, scheduled or exported; its row stays in the
state file untouched (another configuration sharing the file may still own it) and is
replaced the day its business is configured again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.config import BusinessSettings, Settings
from monitor.sharding import Shard


@dataclass(frozen=True, slots=True)
class Target:
    """One WABA to poll, attributed to the business portfolio that owns it."""

    business_id: str
    waba_id: str


class Reason(enum.StrEnum):
    """Why a WABA is watched (most authoritative first)."""

    CONFIGURED = "configured"  # listed under businesses[].wabas
    DISCOVERED = "discovered"  # found by a configured business's discovery
    RESTORED = "restored"  # from the state file, until its business discovers again


@dataclass(frozen=True, slots=True)
class Watch:
    """A WABA in the desired set: the target, the configured business that brought it
    (``via``: it lists or discovered the WABA) and the reason."""

    target: Target
    via: str
    reason: Reason

    @property
    def waba_id(self) -> str:
        return self.target.waba_id

    @property
    def business_id(self) -> str:
        return self.target.business_id


class Fleet:
    """Desired businesses and WABAs of this process; changes only through its methods."""

    def __init__(self, settings: Settings, shard: Shard | None = None) -> None:
        self._discovered: dict[str, frozenset[Target]] = {}  # via business -> its finds
        self._restored: dict[str, Watch] = {}  # waba_id -> provisional watch
        self._attempted: set[str] = set()  # businesses whose discovery has run at least once
        self._owners: dict[str, str] = {}  # configured waba_id -> owner read from its node
        self.configure(settings, shard or Shard())

    # --- inputs ----------------------------------------------------------------------------
    def configure(self, settings: Settings, shard: Shard) -> None:
        """Take a (new) configuration: what it no longer vouches for leaves the set."""
        self.settings = settings
        self.shard = shard
        self.businesses: tuple[BusinessSettings, ...] = tuple(
            b for b in settings.businesses if shard.owns(b.id))
        discovering = {b.id for b in self.discovery_businesses()}
        self._discovered = {
            via: frozenset(t for t in found if shard.owns(t.business_id))
            for via, found in self._discovered.items() if via in discovering}
        self._attempted &= discovering
        # Listed WABA -> the business that lists it, for attribute() (once per node read).
        self._listed = {w: b.id for b in self.businesses for w in (b.wabas or ())}
        self._owners = {w: o for w, o in self._owners.items()
                        if w in self._listed and o != self._listed[w]}
        self._restored = {w: watch for w, watch in self._restored.items()
                          if self._vouched(watch)}

    def restore(self, wabas: Iterable[tuple[Target, str | None]]) -> list[Watch]:
        """Offer WABAs from the state file as (target, via); returns those accepted.

        A WABA the configuration lists is accepted as configured; one that a discovering
        business found is accepted until that business's next discovery; any other is refused.
        ``via`` is None in state written before it was recorded: the owner stands in for it.
        """
        accepted: list[Watch] = []
        configured = self.configured()
        for target, via in wabas:
            listed = configured.get(target.waba_id)
            if listed is not None:
                if via == listed.via and target.business_id != via:  # its owner, last time
                    self._owners[target.waba_id] = target.business_id
                    listed = Watch(target, listed.via, Reason.CONFIGURED)
                accepted.append(listed)
                continue
            watch = Watch(target, via or target.business_id, Reason.RESTORED)
            if self._vouched(watch):
                self._restored[target.waba_id] = watch
                accepted.append(watch)
        return accepted

    def discovered(self, via: str, found: Iterable[Target] | None) -> bool:
        """Record one discovery of business ``via``; None means it failed (keep what we had).
        True when the desired set changed."""
        self._attempted.add(via)
        if found is None:
            return False
        mine = frozenset(t for t in found if self.shard.owns(t.business_id))
        restored = {w: watch for w, watch in self._restored.items() if watch.via != via}
        changed = self._discovered.get(via) != mine or len(restored) != len(self._restored)
        self._discovered[via] = mine
        self._restored = restored
        return changed

    # --- outputs ---------------------------------------------------------------------------
    def discovery_businesses(self) -> tuple[BusinessSettings, ...]:
        """Every shard discovers every business: a client WABA may belong to a business of
        this shard although the business that lists it does not."""
        return tuple(b for b in self.settings.businesses if b.wabas is None)

    def configured(self) -> dict[str, Watch]:
        """Listed WABAs, each attributed to its owner when its node named one: a Solution
        Provider may list a client's WABA, which counts toward the client's cap."""
        return {w: Watch(Target(self._owners.get(w, b.id), w), b.id, Reason.CONFIGURED)
                for b in self.businesses for w in (b.wabas or ())}

    def owners(self) -> dict[str, str]:
        """Listed WABAs attributed to another owner, as read from their nodes."""
        return dict(self._owners)

    def attribute(self, waba_id: str, owner_business_id: str | None) -> bool:
        """A listed WABA's owner, as its node says; True when that changed the set. Only an
        owner other than the listing business is kept, so a fleet whose WABAs are listed
        under their owners (the usual case) never changes here."""
        listing = self._listed.get(waba_id)
        if listing is None or not owner_business_id:
            return False
        before = self._owners.get(waba_id, listing)
        if owner_business_id == listing:
            self._owners.pop(waba_id, None)
        else:
            self._owners[waba_id] = owner_business_id
        return before != owner_business_id

    def desired(self) -> dict[str, Watch]:
        """Every WABA to watch, keyed by id; a configured entry outranks a discovered one,
        which outranks a restored one."""
        out: dict[str, Watch] = dict(self._restored)
        for via in sorted(self._discovered):
            for target in sorted(self._discovered[via], key=lambda t: t.waba_id):
                out[target.waba_id] = Watch(target, via, Reason.DISCOVERED)
        out.update(self.configured())
        return out

    def watched_via(self, business_id: str) -> list[Target]:
        """The WABAs a configured business lists or found: what its job reads nodes of
        (without computing the whole desired set, which a fleet of thousands would pay for
        once per business)."""
        listed = [w for b in self.businesses if b.id == business_id for w in (b.wabas or ())]
        out = [Target(self._owners.get(w, business_id), w) for w in listed]
        out.extend(sorted(self._discovered.get(business_id, ()), key=lambda t: t.waba_id))
        out.extend(w.target for w in self._restored.values() if w.via == business_id)
        return out

    def business_ids(self, desired: Mapping[str, Watch] | None = None) -> frozenset[str]:
        """Businesses to export: the configured ones of this shard and every WABA's owner."""
        wabas = self.desired() if desired is None else desired
        return frozenset({b.id for b in self.businesses} | {w.business_id for w in wabas.values()})

    @property
    def discovery_complete(self) -> bool:
        """Every discovering business has run (successfully or not) since it was configured."""
        return {b.id for b in self.discovery_businesses()} <= self._attempted

    # --- rules -----------------------------------------------------------------------------
    def _vouched(self, watch: Watch) -> bool:
        """A restored WABA stays only while the business that found it still discovers and
        this shard owns its owner."""
        discovering = {b.id for b in self.discovery_businesses()}
        return watch.via in discovering and self.shard.owns(watch.business_id)
