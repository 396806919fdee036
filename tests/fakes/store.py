"""In-memory fakes of the store's repository ports, for service tests (test double of the SQL edge).

They keep the contract of ``callcenter.store.sql_repos`` (the same tests run against both, see
``tests/integration/store``): aware times only, returned in UTC; JSON details copied as JSON;
an outcome decided once; ``ConflictError`` / ``NotFoundError`` / ``ValidationError`` where SQL
raises them; newest-first keyset pages with cursors of the same shape.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.paging import Page, check_limit, decode_cursor, encode_cursor
from callcenter.model.records import AgentRecord, ApiToken, AuditEntry, CallEvent, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState
from callcenter.queue.detection import close_missed_calls
from callcenter.queue.ports import CallFilter, StepWrite

T = TypeVar("T")
Key = tuple[Any, ...]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"time {value.isoformat()} has no time zone; the store keeps aware times only")
    return value.astimezone(UTC)


def _utc_fields(record: T) -> T:
    """``record`` with every datetime field in UTC. :raises ValidationError: for a naive one."""
    changes = {
        f.name: _utc(getattr(record, f.name))
        for f in dataclasses.fields(record)  # type: ignore[arg-type]
        if isinstance(getattr(record, f.name), datetime)
    }
    return dataclasses.replace(record, **changes)  # type: ignore[type-var]


def _json_copy(detail: dict[str, object]) -> dict[str, object]:
    """What a JSON column gives back (tuples become lists). :raises ValidationError: if not JSON."""
    try:
        copied = json.loads(json.dumps(detail))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"detail is not JSON: {exc}") from exc
    assert isinstance(copied, dict)
    return copied


def _paged(
    items: Iterable[T],
    key: Callable[[T], Key],
    kinds: tuple[type, ...],
    cursor: str | None,
    limit: int,
    *,
    descending: bool,
) -> Page[T]:
    """Keyset paging over ``items`` sorted by ``key`` (of types ``kinds``); the cursor holds the last key."""
    check_limit(limit)
    ordered = sorted(items, key=key, reverse=descending)
    if cursor is not None:
        after = _decode_key(cursor, kinds)
        ordered = [i for i in ordered if (key(i) < after if descending else key(i) > after)]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page(items=tuple(page), next=encode_cursor(_wire_key(key(page[-1]))) if more else None)


def _wire_key(key: Key) -> tuple[str | int | float, ...]:
    return tuple(k.isoformat() if isinstance(k, datetime) else k for k in key)


def _decode_key(cursor: str, kinds: tuple[type, ...]) -> Key:
    """The sort key in ``cursor`` with times parsed back. :raises ValidationError: for a foreign cursor."""
    raw = decode_cursor(cursor)
    if len(raw) != len(kinds):
        raise ValidationError("invalid cursor")
    key: list[Any] = []
    for value, kind in zip(raw, kinds, strict=True):
        if kind is datetime:
            if not isinstance(value, str):
                raise ValidationError("invalid cursor")
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValidationError("invalid cursor") from exc
            if parsed.tzinfo is None:
                raise ValidationError("invalid cursor")
            key.append(parsed)
        elif type(value) is not kind:
            raise ValidationError("invalid cursor")
        else:
            key.append(value)
    return tuple(key)


class InMemoryCallRepository:
    """``CallRepository`` plus the timeline methods of ``SqlCallRepository``."""

    def __init__(self) -> None:
        self.calls: dict[str, CallRecord] = {}
        self._events: list[CallEvent] = []

    async def upsert(self, call: CallRecord) -> None:
        call = _utc_fields(call)
        stored = self.calls.get(call.id)
        if stored is None or stored.outcome is None:
            self.calls[call.id] = call
            return
        # Decided: keep the ending as stored, only fill fields still empty (as SQL's CASE does).
        fills = {
            f.name: getattr(call, f.name)
            for f in dataclasses.fields(CallRecord)
            if f.name not in ("id", "reconciled") and getattr(stored, f.name) in (None, "")
        }
        self.calls[call.id] = dataclasses.replace(stored, **fills)

    async def get(self, call_id: str) -> CallRecord:
        try:
            return self.calls[call_id]
        except KeyError:
            raise NotFoundError(f"call {call_id!r} not found") from None

    async def list(self, flt: CallFilter, *, cursor: str | None, limit: int) -> Page[CallRecord]:
        since = _utc(flt.since) if flt.since is not None else None
        until = _utc(flt.until) if flt.until is not None else None
        matching = [
            c
            for c in self.calls.values()
            if (flt.outcome is None or c.outcome == flt.outcome)
            and (flt.queue is None or c.queue == flt.queue)
            and (flt.caller is None or c.caller == flt.caller)
            and (since is None or c.arrived_at >= since)
            and (until is None or c.arrived_at < until)
        ]
        return _paged(
            matching, lambda c: (c.arrived_at, c.id), (datetime, str), cursor, limit, descending=True
        )

    async def recent_of(self, callers: Collection[str], limit: int) -> dict[str, tuple[CallRecord, ...]]:
        recent: dict[str, tuple[CallRecord, ...]] = {}
        for caller in set(callers):
            mine = sorted(
                (c for c in self.calls.values() if c.caller == caller), key=lambda c: (c.arrived_at, c.id)
            )
            if mine:
                recent[caller] = tuple(reversed(mine))[:limit]
        return recent

    async def append_event(
        self, call_id: str, at: datetime, kind: str, detail: dict[str, object] | None = None
    ) -> CallEvent:
        if call_id not in self.calls:
            raise NotFoundError(f"call {call_id!r} not found")
        body = _json_copy(dict(detail or {}))
        event = CallEvent(id=len(self._events) + 1, call_id=call_id, at=_utc(at), kind=kind, detail=body)
        self._events.append(event)
        return dataclasses.replace(event, detail=dict(detail or {}), at=at)

    async def events(self, call_id: str) -> tuple[CallEvent, ...]:
        if call_id not in self.calls:
            raise NotFoundError(f"call {call_id!r} not found")
        mine = [e for e in self._events if e.call_id == call_id]
        return tuple(sorted(mine, key=lambda e: (e.at, e.id or 0)))

    async def open_missed(self, caller: str, *, before: datetime) -> tuple[CallRecord, ...]:
        before = _utc(before)
        missed = [
            c
            for c in self.calls.values()
            if c.caller == caller
            and c.outcome is not None
            and c.outcome.is_missed
            and c.closed_at is None
            and c.arrived_at < before
        ]
        return tuple(sorted(missed, key=lambda c: (c.arrived_at, c.id)))

    async def undecided(self) -> tuple[CallRecord, ...]:
        live = [c for c in self.calls.values() if c.outcome is None]
        return tuple(sorted(live, key=lambda c: (c.arrived_at, c.id)))


class InMemoryQueueRepository:
    """``QueueRepository``."""

    def __init__(self) -> None:
        self.queues: dict[str, QueueRecord] = {}

    async def put(self, queue: QueueRecord) -> None:
        # What the JSON columns give back: plain dicts of tuples, dates sorted as given.
        hours = queue.business_hours
        self.queues[queue.name] = dataclasses.replace(
            queue,
            business_hours=None if hours is None else {day: tuple(spans) for day, spans in hours.items()},
        )

    async def get(self, name: str) -> QueueRecord:
        try:
            return self.queues[name]
        except KeyError:
            raise NotFoundError(f"queue {name!r} not found") from None

    async def list(self) -> tuple[QueueRecord, ...]:
        return tuple(self.queues[name] for name in sorted(self.queues))


class InMemoryAgentRepository:
    """``AgentRepository``; queue names are checked against ``queues`` (as the SQL foreign key does)."""

    def __init__(self, queues: InMemoryQueueRepository) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self._queues = queues

    def _checked_queues(self, names: Sequence[str]) -> tuple[str, ...]:
        wanted = sorted(set(names))
        missing = [n for n in wanted if n not in self._queues.queues]
        if missing:
            raise NotFoundError(f"unknown queue(s): {', '.join(missing)}")
        return tuple(wanted)

    async def add(self, agent: AgentRecord) -> None:
        queues = self._checked_queues(agent.queues)
        agent = _utc_fields(agent)
        if agent.id in self.agents:
            raise ConflictError(f"agent {agent.id!r} already exists")
        self.agents[agent.id] = dataclasses.replace(agent, queues=queues)

    async def get(self, agent_id: str) -> AgentRecord:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise NotFoundError(f"agent {agent_id!r} not found") from None

    async def list(self, *, cursor: str | None, limit: int) -> Page[AgentRecord]:
        return _paged(self.agents.values(), lambda a: (a.id,), (str,), cursor, limit, descending=False)

    async def set_state(self, agent_id: str, state: AgentState, at: datetime) -> AgentRecord:
        agent = await self.get(agent_id)
        since = agent.state_since if agent.state == state and agent.state_since is not None else _utc(at)
        self.agents[agent_id] = dataclasses.replace(agent, state=state, state_since=since)
        return self.agents[agent_id]

    async def set_queues(self, agent_id: str, queues: tuple[str, ...]) -> AgentRecord:
        agent = await self.get(agent_id)
        self.agents[agent_id] = dataclasses.replace(agent, queues=self._checked_queues(queues))
        return self.agents[agent_id]


class InMemoryTokenRepository:
    """``TokenRepository``; with ``agents`` given, a token's agent must exist (the SQL foreign key)."""

    def __init__(self, agents: InMemoryAgentRepository | None = None) -> None:
        self.tokens: dict[str, ApiToken] = {}
        self.hashes: dict[str, str] = {}
        self._agents = agents

    async def add(self, token: ApiToken, secret_hash: str) -> None:
        token = _utc_fields(token)
        if token.id in self.tokens or secret_hash in self.hashes:
            raise ConflictError(f"token {token.id!r} or its secret already exists")
        if (
            self._agents is not None
            and token.agent_id is not None
            and token.agent_id not in self._agents.agents
        ):
            raise NotFoundError(f"agent {token.agent_id!r} not found")
        self.tokens[token.id] = token
        self.hashes[secret_hash] = token.id

    async def find_by_hash(self, secret_hash: str) -> ApiToken | None:
        token_id = self.hashes.get(secret_hash)
        return self.tokens[token_id] if token_id is not None else None

    async def get(self, token_id: str) -> ApiToken:
        try:
            return self.tokens[token_id]
        except KeyError:
            raise NotFoundError(f"token {token_id!r} not found") from None

    async def list(self, *, cursor: str | None, limit: int) -> Page[ApiToken]:
        return _paged(
            self.tokens.values(),
            lambda t: (t.created_at, t.id),
            (datetime, str),
            cursor,
            limit,
            descending=True,
        )

    async def revoke(self, token_id: str, at: datetime) -> ApiToken:
        token = await self.get(token_id)
        if token.revoked_at is None:
            token = dataclasses.replace(token, revoked_at=_utc(at))
            self.tokens[token_id] = token
        return token

    async def touch(self, token_id: str, at: datetime) -> None:
        token = self.tokens.get(token_id)
        at = _utc(at)
        if token is not None and (token.last_used_at is None or token.last_used_at < at):
            self.tokens[token_id] = dataclasses.replace(token, last_used_at=at)


class InMemoryAuditLog:
    """``AuditLog``: append-only, ids from 1."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> AuditEntry:
        stored = dataclasses.replace(
            _utc_fields(entry), id=len(self.entries) + 1, detail=_json_copy(entry.detail)
        )
        self.entries.append(stored)
        return dataclasses.replace(entry, id=stored.id)

    async def list(self, *, cursor: str | None, limit: int) -> Page[AuditEntry]:
        return _paged(
            self.entries, lambda e: (e.at, e.id or 0), (datetime, int), cursor, limit, descending=True
        )


@dataclasses.dataclass(frozen=True, slots=True)
class InMemoryStore:
    """Every in-memory repository, linked the way the SQL foreign keys link the tables."""

    calls: InMemoryCallRepository
    queues: InMemoryQueueRepository
    agents: InMemoryAgentRepository
    tokens: InMemoryTokenRepository
    audit: InMemoryAuditLog

    @classmethod
    def create(cls) -> InMemoryStore:
        queues = InMemoryQueueRepository()
        agents = InMemoryAgentRepository(queues)
        return cls(
            calls=InMemoryCallRepository(),
            queues=queues,
            agents=agents,
            tokens=InMemoryTokenRepository(agents),
            audit=InMemoryAuditLog(),
        )


class InMemoryStepStore:
    """``StepStore`` over the in-memory repositories: the steps in order, every check done first.

    All or nothing like the SQL one: a timeline entry of an unknown call (one not stored before
    and not in the batch) refuses the whole batch before anything is written. ``fail_next`` makes
    the next batch raise; ``batches`` records the size of each batch stored.
    """

    def __init__(self, calls: InMemoryCallRepository, agents: InMemoryAgentRepository) -> None:
        self.calls = calls
        self.agents = agents
        self.batches: list[int] = []
        self._failures: list[Exception] = []

    def fail_next(self, error: Exception) -> None:
        self._failures.append(error)

    def recover(self) -> None:
        """Forget the failures still queued: the store answers again."""
        self._failures.clear()

    async def save_steps(self, steps: Sequence[StepWrite]) -> frozenset[str]:
        if self._failures:
            raise self._failures.pop(0)
        known = set(self.calls.calls) | {s.record.id for s in steps if s.record is not None}
        for step in steps:
            for entry in step.entries:
                if entry.call_id not in known:
                    raise NotFoundError(f"call {entry.call_id!r} not found")
        missing = frozenset(
            s.agent_id for step in steps for s in step.states if s.agent_id not in self.agents.agents
        )
        for step in steps:
            if step.record is not None:
                await self.calls.upsert(step.record)
            for entry in step.entries:
                await self.calls.append_event(entry.call_id, entry.at, entry.kind, dict(entry.detail))
            for state in step.states:
                if state.agent_id not in missing:
                    await self.agents.set_state(state.agent_id, state.state, state.occurred_at)
            if step.close_missed is not None:
                caller, reached_at = step.close_missed
                missed = await self.calls.open_missed(caller, before=reached_at)
                for record in close_missed_calls(missed, caller=caller, reached_at=reached_at):
                    await self.calls.upsert(record)
        self.batches.append(len(steps))
        return missing
