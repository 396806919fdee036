"""The store's hottest statements on PostgreSQL, run on asyncpg's own connection (edge).

Through SQLAlchemy's async layer each statement costs about twice the driver's own CPU: the queue's
step batch (three ``executemany`` in one transaction) measured 1.3 ms of CPU through SQLAlchemy and
0.6 ms on asyncpg directly, and it runs for nearly every call. Here the statements stay SQLAlchemy
Core, compiled once for the engine's dialect (the very SQL the SQLAlchemy path sends), and their
parameters go through each type's own bind processing, as SQLAlchemy would apply it: a naive time is
refused by ``UtcDateTime``, a JSON document is serialised.

:func:`driver_transaction` lends a pooled connection's asyncpg connection for one transaction and maps
failures as :func:`~callcenter.store.database.store_error` does; a connection found broken before the
work finished is dropped from the pool and the work runs again on the next one (nothing was
committed), as :meth:`~callcenter.store.sql_repos._SqlRepository._write` does (where SQLAlchemy drops
the pool's other connections of that age at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

import asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from callcenter.errors import (
    CallCenterError,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from callcenter.store.database import POOL_OVERFLOW, POOL_SIZE

R = TypeVar("R")

_FOREIGN_KEY_VIOLATION: Final = "23503"
# The connection itself failed (a connection the server dropped shows as an internal client error at
# its next statement): nothing of an unfinished transaction was committed.
_BROKEN: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


class DriverStatement:
    """A Core statement compiled once for asyncpg, its parameters put in order from a row by name.

    :param column_keys: for an ``INSERT``, the columns the rows carry (the others get their defaults).
    """

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, *, column_keys: Sequence[str] | None = None
    ):
        compiled = cast(
            SQLCompiler,
            statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None),
        )
        self.sql: Final = str(compiled)
        slots: list[tuple[str | None, object, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:  # a value each row brings, under its key
                slots.append((bind.key, None, process))
            else:  # a value written into the statement, e.g. the '' an upsert compares with
                slots.append((None, process(bind.value) if process else bind.value, None))
        self._slots = tuple(slots)

    def arguments(self, row: Mapping[str, object]) -> tuple[object, ...]:
        """``row``'s values in the statement's order, each through its type's bind processing.

        :raises ValidationError: a value the type refuses (a naive time), before anything is sent.
        """
        try:
            return tuple(
                fixed if key is None else (process(row[key]) if process is not None else row[key])
                for key, fixed, process in self._slots
            )
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"a value the store refuses: {exc}") from exc

    async def many(self, connection: asyncpg.Connection, rows: Sequence[Mapping[str, object]]) -> None:
        """The statement once per row, in one ``executemany`` (nothing for no rows)."""
        if rows:
            await connection.executemany(self.sql, [self.arguments(row) for row in rows])

    async def fetch(self, connection: asyncpg.Connection, row: Mapping[str, object]) -> list[asyncpg.Record]:
        """The rows the statement returns with the parameters of ``row``."""
        records: list[asyncpg.Record] = await connection.fetch(self.sql, *self.arguments(row))
        return records


async def driver_read(
    engine: AsyncEngine,
    doing: str,
    work: Callable[[asyncpg.Connection], Awaitable[R]],
    *,
    timeout_s: float,
) -> R:
    """``work``, reads only, on a pooled connection's asyncpg connection, outside a transaction (as
    the repositories' other reads on PostgreSQL); failures mapped as :func:`driver_transaction` does."""
    return await driver_transaction(engine, doing, work, timeout_s=timeout_s, transaction=False)


async def driver_transaction(
    engine: AsyncEngine,
    doing: str,
    work: Callable[[asyncpg.Connection], Awaitable[R]],
    *,
    timeout_s: float,
    transaction: bool = True,
) -> R:
    """``work`` in one transaction on a pooled connection's asyncpg connection, committed on success.

    :raises StoreUnavailableError: the database is unreachable, or did not answer within ``timeout_s``.
    :raises ConflictError, NotFoundError, ValidationError: as :func:`store_error` maps them; nothing
        was stored.
    """
    where = engine.url.render_as_string(hide_password=True)
    try:
        async with asyncio.timeout(timeout_s):
            return await _on_a_working_connection(engine, work, transaction)
    except TimeoutError as exc:
        raise StoreUnavailableError(
            f"SQL store at {where} did not answer within {timeout_s:g} s while {doing}"
        ) from exc
    except CallCenterError:
        raise
    except (asyncpg.PostgresError, *_BROKEN) as exc:
        raise _store_error(exc, where, doing) from exc


async def _on_a_working_connection(
    engine: AsyncEngine, work: Callable[[asyncpg.Connection], Awaitable[R]], transaction: bool
) -> R:
    # Each broken connection met is dropped; a server restart leaves every pooled one broken.
    attempts = POOL_SIZE + POOL_OVERFLOW + 1
    for attempt in range(1, attempts + 1):
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection
            worked = False  # a read is never worked: it may always run again
            try:
                if not transaction:
                    return await work(driver)
                async with driver.transaction():
                    result = await work(driver)
                    worked = True  # the commit follows, on leaving the block
                return result
            except (asyncpg.PostgresError, CallCenterError) as exc:
                if not isinstance(exc, asyncpg.PostgresConnectionError):
                    raise  # refused and rolled back: the connection serves on
                await connection.invalidate()
                if attempt < attempts and not worked:
                    continue
                raise
            except BaseException as exc:
                # Broken, or cancelled mid-statement: the connection's state is unknown, so it never
                # goes back to the pool.
                await connection.invalidate()
                if isinstance(exc, _BROKEN) and attempt < attempts and not worked:
                    continue
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _store_error(exc: Exception, where: str, doing: str) -> CallCenterError:
    """Our error for a driver failure, as :func:`~callcenter.store.database.store_error` maps."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        if exc.sqlstate == _FOREIGN_KEY_VIOLATION:
            return NotFoundError(f"{doing}: refers to a row that does not exist ({_reason(exc)})")
        return ConflictError(f"{doing}: already exists or contradicts a stored row ({_reason(exc)})")
    if isinstance(exc, asyncpg.DataError):
        return ValidationError(f"{doing}: the database refused a value ({_reason(exc)})")
    return StoreUnavailableError(f"SQL store at {where} unavailable while {doing}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """A one-line cause; asyncpg's messages carry no statement parameters."""
    message = str(exc).splitlines()[0] if str(exc) else ""
    name = type(exc).__name__
    return f"{name}: {message}" if message else name
