"""State that survives restarts, in an embedded SQLite file that needs no server.

What is kept: facts only a webhook tells — learned registration caps, a WABA's enforcement
and review facts, account alerts — written at once, before the webhook is answered (Meta
tells them once); the last state of every WABA with its real timestamps; and a history of
field transitions, committed with the WABA's state before the change shows anywhere. States
of polls that changed nothing are written behind, batched: after a crash at most the last
flush interval of freshness timestamps is lost, and the next poll restores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import operator
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import structlog

from monitor.accounts import AccountAlert, WabaFacts, facts_from_json, facts_to_json
from monitor.graph.usage import BucUsage
from monitor.lifecycle import background
from monitor.model import HealthError, LearnedCap, PhoneNumber, Transition, WabaState

log = structlog.get_logger("monitor.state")

FILE_NAME = "waba-monitor.sqlite3"
FLUSH_INTERVAL = 1.0  # seconds between batched writes of WABA states and transitions
# A WABA whose poll changed only freshness (times, counts, usage) is written this often.
FRESHNESS_WRITE_INTERVAL = 300.0
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS learned_caps (
    business_id TEXT PRIMARY KEY,
    cap INTEGER NOT NULL,
    source_field TEXT NOT NULL,
    learned_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS business_facts (
    business_id TEXT PRIMARY KEY,
    verified INTEGER
);
CREATE TABLE IF NOT EXISTS wabas (
    waba_id TEXT PRIMARY KEY,
    business_id TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    business_id TEXT NOT NULL,
    waba_id TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    field TEXT NOT NULL,
    old TEXT,
    new TEXT
);
CREATE INDEX IF NOT EXISTS transitions_at ON transitions (at);
CREATE TABLE IF NOT EXISTS waba_facts (
    waba_id TEXT PRIMARY KEY,
    business_id TEXT NOT NULL,
    facts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS account_alerts (
    business_id TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    alert_type TEXT NOT NULL,
    alert_severity TEXT NOT NULL,
    alert_status TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (business_id, entity_type, entity_id, alert_type, alert_severity)
);
"""


# Template changes (issue 12): the subject of a transition that is a template, not a number.
_ADDED_COLUMNS = (("template_id", "TEXT NOT NULL DEFAULT ''"), ("template_name", "TEXT"))


class StateError(Exception):
    """The state file cannot be opened or is not ours; the message says which and where."""


def waba_to_json(state: WabaState) -> str:
    """The state as compact JSON; orjson walks the dataclasses natively (``asdict`` copied
    every field of every number first, most of the state file's cost)."""
    return orjson.dumps(state, default=_plain).decode()


def _plain(value: object) -> object:
    """What orjson does not know natively: a Mapping that is not a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value).__name__)


def _number_from_json(raw: dict[str, Any]) -> PhoneNumber:
    errors = tuple(HealthError(**e) for e in raw.pop("health_errors", ()) or ())
    overrides = tuple(str(v) for v in raw.pop("webhook_overrides", ()) or ())
    known = {f.name for f in dataclasses.fields(PhoneNumber)}
    return PhoneNumber(health_errors=errors, webhook_overrides=overrides,
                       **{k: v for k, v in raw.items() if k in known})


def waba_from_json(text: str) -> WabaState:
    raw: dict[str, Any] = json.loads(text)
    numbers = tuple(_number_from_json(n) for n in raw.pop("numbers", ()))
    changed = raw.pop("status_changed_at", {}) or {}
    usage = tuple(BucUsage(**u) for u in raw.pop("usage", ()) or ())
    known = {f.name for f in dataclasses.fields(WabaState)}
    return WabaState(numbers=numbers, status_changed_at=dict(changed), usage=usage,
                     **{k: v for k, v in raw.items() if k in known})


def _add_columns(conn: sqlite3.Connection) -> None:
    """Columns added since a schema version was written: additive, so an older daemon still
    reads the file (it names the columns it knows) and no version bump is needed."""
    have = {str(r[1]) for r in conn.execute("PRAGMA table_info(transitions)")}
    for name, decl in _ADDED_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE transitions ADD COLUMN {name} {decl}")


def _insert_transitions(conn: sqlite3.Connection, transitions: Iterable[Transition]) -> None:
    conn.executemany(
        "INSERT INTO transitions (at, business_id, waba_id, phone_number_id, field, old, new,"
        " template_id, template_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(t.at, t.business_id, t.waba_id, t.phone_number_id, t.field, t.old, t.new,
          t.template_id, t.template_name) for t in transitions],
    )


class StateDB:
    """A thin, thread-safe wrapper: flushes run in a worker thread, reads at start-up."""

    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / FILE_NAME
            self._conn = sqlite3.connect(self.path, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            _add_columns(self._conn)
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise StateError(f"{self.path}: state schema {row[0]} is not {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state.directory: cannot open {directory}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- caps and business facts: written at once -----------------------------------------
    def save_cap(self, cap: LearnedCap) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO learned_caps VALUES (?, ?, ?, ?)",
                (cap.business_id, cap.cap, cap.source_field, cap.learned_at),
            )

    def learned_caps(self) -> list[LearnedCap]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM learned_caps").fetchall()
        return [LearnedCap(str(r[0]), int(r[1]), str(r[2]), float(r[3])) for r in rows]

    def save_verified(self, business_id: str, verified: bool | None) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO business_facts VALUES (?, ?)",
                (business_id, None if verified is None else int(verified)),
            )

    def verified(self) -> dict[str, bool | None]:
        with self._lock:
            rows = self._conn.execute("SELECT business_id, verified FROM business_facts")
            return {str(b): None if v is None else bool(v) for b, v in rows.fetchall()}

    # --- WABA states and transitions: written behind, in batches --------------------------
    def write(self, states: Iterable[WabaState], removed: Iterable[str],
              transitions: Iterable[Transition], *, prune_before: float | None = None) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO wabas VALUES (?, ?, ?)",
                    [(s.waba_id, s.business_id, waba_to_json(s)) for s in states],
                )
                self._conn.executemany("DELETE FROM wabas WHERE waba_id = ?",
                                       [(w,) for w in removed])
                _insert_transitions(self._conn, transitions)
                if prune_before is not None:
                    self._conn.execute("DELETE FROM transitions WHERE at < ?", (prune_before,))
                    self._conn.execute("DELETE FROM account_alerts WHERE at < ?",
                                       (prune_before,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def commit_change(self, state: WabaState, transitions: Iterable[Transition]) -> None:
        """A WABA whose fields changed: its state and the transitions, in one transaction,
        before the change is shown anywhere (a crash never shows what the file lacks)."""
        self.write([state], [], transitions)

    # --- webhook-only facts: written before the webhook is answered -------------------------
    def save_waba_facts(self, waba_id: str, business_id: str, facts: WabaFacts) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO waba_facts VALUES (?, ?, ?)",
                               (waba_id, business_id,
                                json.dumps(facts_to_json(facts), separators=(",", ":"))))

    def save_webhook_facts(self, facts: Iterable[tuple[str, str, WabaFacts]],
                           alerts: Iterable[AccountAlert], caps: Iterable[LearnedCap],
                           transitions: Iterable[Transition] = ()) -> None:
        """What webhooks staged — (waba_id, business_id, facts), alerts, learned caps, and
        the template changes the facts make — in one transaction: a change's key is never
        durable without the facts it brought."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO waba_facts VALUES (?, ?, ?)",
                    [(w, b, json.dumps(facts_to_json(f), separators=(",", ":")))
                     for w, b, f in facts])
                self._conn.executemany(
                    "INSERT OR REPLACE INTO account_alerts VALUES (?,?,?,?,?,?,?)",
                    [(*a.key, a.alert_status, a.at) for a in alerts])
                self._conn.executemany(
                    "INSERT OR REPLACE INTO learned_caps VALUES (?, ?, ?, ?)",
                    [(c.business_id, c.cap, c.source_field, c.learned_at) for c in caps])
                _insert_transitions(self._conn, transitions)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def waba_facts(self) -> dict[str, tuple[str, WabaFacts]]:
        with self._lock:
            rows = self._conn.execute("SELECT waba_id, business_id, facts FROM waba_facts")
            found = rows.fetchall()
        out: dict[str, tuple[str, WabaFacts]] = {}
        for waba_id, business_id, text in found:
            try:
                out[str(waba_id)] = (str(business_id), facts_from_json(json.loads(text)))
            except (ValueError, TypeError, AttributeError):
                continue  # a broken row must not stop the daemon; the next webhook rewrites it
        return out

    def save_account_alert(self, alert: AccountAlert) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO account_alerts VALUES (?,?,?,?,?,?,?)",
                               (*alert.key, alert.alert_status, alert.at))

    def account_alerts(self) -> list[AccountAlert]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM account_alerts ORDER BY at").fetchall()
        return [AccountAlert(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                             None if r[5] is None else str(r[5]), float(r[6])) for r in rows]

    def wabas(self) -> list[WabaState]:
        with self._lock:
            rows = self._conn.execute("SELECT state FROM wabas ORDER BY waba_id").fetchall()
        out: list[WabaState] = []
        for (text,) in rows:
            try:
                out.append(waba_from_json(text))
            except (ValueError, TypeError):
                continue  # a row from a future or broken version: the next poll rebuilds it
        return out

    def transitions(self, *, since: float = 0.0, limit: int = 1000) -> list[Transition]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT at, business_id, waba_id, phone_number_id, field, old, new, "
                "template_id, template_name "
                "FROM transitions WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?",
                (since, limit),
            ).fetchall()
        return [
            Transition(at=float(r[0]), business_id=str(r[1]), waba_id=str(r[2]),
                       phone_number_id=str(r[3]), field=str(r[4]), old=r[5], new=r[6],
                       template_id=str(r[7] or ""), template_name=r[8])
            for r in rows
        ]


# Fields a poll changes without anything else changing; see StateWriter.on_change.
_FRESHNESS = frozenset({"last_success", "last_attempt", "last_duration", "polls",
                        "last_requests", "usage_ratio", "usage"})
_DURABLE = operator.attrgetter(*(f.name for f in dataclasses.fields(WabaState)
                                 if f.name not in _FRESHNESS and f.name != "numbers"))


def only_fresher(old: WabaState, new: WabaState) -> bool:
    """True when ``new`` differs from ``old`` in freshness fields only (the numbers the same
    objects or equal, up the same, nothing else changed)."""
    if old.numbers is not new.numbers and old.numbers != new.numbers:
        return False
    return bool(_DURABLE(old) == _DURABLE(new))


class StateWriter:
    """Collects store changes and writes them in batches from a worker thread."""

    def __init__(self, db: StateDB, *, retention: float,
                 refresh: float = FRESHNESS_WRITE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.retention = retention
        self.refresh = refresh
        self._clock = clock
        self._pending: dict[str, WabaState] = {}
        self._removed: set[str] = set()
        # Freshness-only states held back by ``refresh``: written at the final flush, so a
        # clean stop leaves the file as fresh as memory (only kill -9 loses them).
        self._deferred: dict[str, WabaState] = {}
        # What was last handed over for writing, per WABA, and when.
        self._written: dict[str, tuple[WabaState, float]] = {}
        self.lock = asyncio.Lock()  # one write at a time, in the order they were asked for

    async def commit(self, state: WabaState, transitions: list[Transition]) -> None:
        """Write a changed WABA and its transitions now (in a worker thread), in turn with
        the batches, so an older batched state never lands after it."""
        async with self.lock:
            self._pending.pop(state.waba_id, None)
            self._written[state.waba_id] = (state, self._clock())
            await asyncio.to_thread(self.db.commit_change, state, transitions)

    async def commit_transitions(self, transitions: list[Transition]) -> None:
        """Write transitions that change no WABA state (a template's) now, in turn."""
        async with self.lock:
            await asyncio.to_thread(self.db.write, [], [], transitions)

    def on_change(self, state: WabaState, transitions: list[Transition]) -> None:
        """Batch the state; transitions were committed already (``commit_change``) when the
        store saw them, so they are not written twice. A poll that changed only freshness
        (times, counts, usage readings: the usual poll) is written at most every
        ``refresh`` seconds: the file's last-success time lags by that much at most, and
        a fleet does not rewrite every row every minute."""
        self._removed.discard(state.waba_id)
        if state.waba_id not in self._pending:
            last = self._written.get(state.waba_id)
            if last is not None and self._clock() - last[1] < self.refresh \
                    and only_fresher(last[0], state):
                self._deferred[state.waba_id] = state
                return
        self._deferred.pop(state.waba_id, None)
        self._pending[state.waba_id] = state

    def on_remove(self, waba_id: str) -> None:
        self._pending.pop(waba_id, None)
        self._deferred.pop(waba_id, None)
        self._written.pop(waba_id, None)
        self._removed.add(waba_id)

    @property
    def dirty(self) -> bool:
        return bool(self._pending or self._removed)

    @property
    def deferred(self) -> int:
        """Freshness-only states held back until their ``refresh`` time or the stop."""
        return len(self._deferred)

    def take(self, *, final: bool = False) -> tuple[list[WabaState], list[str]]:
        """Hand over what is pending and start a new batch (called on the event loop); the
        ``final`` one (at stop) includes the held-back freshness-only states."""
        if final:
            self._pending = {**self._deferred, **self._pending}
            self._deferred = {}
        now = self._clock()
        for state in self._pending.values():
            self._written[state.waba_id] = (state, now)
        batch = (list(self._pending.values()), sorted(self._removed))
        self._pending, self._removed = {}, set()
        return batch

    def write(self, batch: tuple[list[WabaState], list[str]], now: float) -> None:
        """Runs in a worker thread."""
        states, removed = batch
        self.db.write(states, removed, (), prune_before=now - self.retention)


@contextlib.asynccontextmanager
async def flushing(writer: StateWriter, *, interval: float = FLUSH_INTERVAL,
                   clock: Callable[[], float] = time.time) -> AsyncIterator[None]:
    """Write the writer's batches every ``interval`` while the body runs, and once more at
    the end, in a worker thread (the aiohttp ``cleanup_ctx`` lifecycle as a context)."""

    async def flush(*, final: bool = False) -> None:
        async with writer.lock:
            if writer.dirty or (final and writer.deferred):
                batch = writer.take(final=final)
                await asyncio.to_thread(writer.write, batch, clock())

    async def forever() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await flush()
            except Exception:
                log.exception("state_write_failed")

    try:
        async with background(forever):
            yield
    finally:
        try:
            await flush(final=True)
        except Exception:
            log.exception("state_write_failed")
