"""Retention: what a finished message said, and to whom, is forgotten `[retention]
messages_days` after it ended (`smsc db purge`, and the server once a day).

Purged, in a message in a final state whose last change is older than the retention: its text
(`body`, and `tlvs`, where a message_payload travels) and its numbers (`destination`, and
`source` when it is a number); in an outbox row delivered or expired that long after it was
made (a client's receipt carries the subscriber's number and the start of the text; a
subscriber's reply its number and text): `body`, `tlvs`, and `source` and `destination` when
they are numbers. An address with a letter in it (an alphanumeric sender id, a brand) is not a
person's and is kept; any other (long numbers, short codes) is emptied.

Kept: ids, account, states, times, carrier, error, attempts, coding, what the client asked
for, the parts at the carrier (`message_parts`: the carrier's ids, states, times; no number,
no text), the credit ledger (amounts and message ids only). A purged message has an empty
destination (every other one has its E.164 number there): `smsc message show` says so.
`inbox_parts` (the parts of a subscriber's long reply) are dropped once the reply is whole, or
after `replies.PARTS_WAIT` (10 minutes) when it never is: nothing there outlives a retention.

Messages waiting or in flight are never touched. The purge walks each table by its primary
key in ranges of `CHUNK` ids, one short transaction each (through the writer on a server: other
work goes between two of them), from a floor kept in `settings`: every row below it is purged,
or was passed while it was not final and `LATE` past its validity (a message whose receipt
never came). It stops at the first range whose rows were all made after the cutoff (ids grow
with time), so a daily run reads about a day of rows, plus the ones still in flight. Purged
rows do not match the predicate again: a second run changes nothing. A row that ends below
the floor (a receipt more than `LATE` after the validity; on PostgreSQL, an id from a block a
quiet node took long before) is purged by a run from the first id (`smsc db purge --rescan`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Table, and_, case, func, insert, or_, select, update

from . import outbox as outbox_rows
from .messages import FINAL, unindexed
from .schema import messages, outbox, settings

CHUNK = 1000  # ids one transaction looks at
LATE = 7 * 86400.0  # seconds after its validity a message not final stops holding the floor
DAY = 86400.0


def _is_number(column):
    """An address without a letter: a phone number or a short code (upper() and lower() of an
    alphanumeric id differ, SQLite's ASCII-only ones included)."""
    return func.upper(column) == func.lower(column)


def _blanked(column):
    """The address, or '' when it is a number."""
    return case((_is_number(column), ""), else_=column)


@dataclass(frozen=True)
class _Kind:
    """What a table's purge needs to know of it."""

    table: Table
    final: tuple[str, ...]  # the states in which a row is done with
    ended: str  # the column the retention counts from
    made: str  # when the row was made (grows with the id)
    floor_key: str  # in `settings`
    values: dict = field(default_factory=dict)  # what a purge writes
    unpurged: Callable = None  # the rows that still hold something to purge


_KINDS = {
    "messages": _Kind(
        messages,
        tuple(sorted(FINAL)),
        "updated_at",
        "submitted_at",
        "retention_floor_messages",
        {"body": b"", "tlvs": b"", "destination": "", "source": _blanked(messages.c.source)},
        lambda t: t.c.destination != "",
    ),
    "outbox": _Kind(
        outbox,
        (outbox_rows.DONE, outbox_rows.EXPIRED),
        "created_at",
        "created_at",
        "retention_floor_outbox",
        {
            "body": b"",
            "tlvs": b"",
            "source": _blanked(outbox.c.source),
            "destination": _blanked(outbox.c.destination),
        },
        lambda t: or_(
            t.c.body != b"",
            t.c.tlvs != b"",
            and_(t.c.source != "", _is_number(t.c.source)),
            and_(t.c.destination != "", _is_number(t.c.destination)),
        ),
    ),
}
TABLES = tuple(_KINDS)


def is_purged(message) -> bool:
    """Whether a message's text and numbers were purged (a `messages.Message`)."""
    return message.destination == ""


@dataclass(frozen=True)
class Step:
    """What one step of a walk did, for `Walk.advance` once its transaction is committed (a
    writer may run a job again when its batch is retried: a step changes nothing in its
    walk)."""

    position: int  # the next id to look at
    end: int
    purged: int
    held: bool
    done: bool


@dataclass
class Walk:
    """One purge of one table: `step(conn)` in a transaction of its own, then `advance` with
    what it returned once that is committed, until `done`. `before`: rows that ended before
    this time are purged; `now`: the time of the run. With `dry_run`, rows are counted and
    nothing is written (the floor neither); with `rescan`, the walk starts at the first id
    rather than at the floor."""

    table: str
    before: float
    now: float
    dry_run: bool = False
    rescan: bool = False
    chunk: int = CHUNK
    purged: int = 0  # rows purged (or, in a dry run, that would be)
    steps: int = 0
    done: bool = False
    _position: int | None = None  # the next id to look at
    _end: int = 0  # one past the last id when the walk started: later rows are recent
    _held: bool = False  # a row that holds the floor was met: the floor stays there

    def step(self, conn: Connection) -> Step:
        """Look at the next range of ids (and purge what is due in it)."""
        kind = _KINDS[self.table]
        t = kind.table
        position, end = self._position, self._end
        if position is None:
            position = 0 if self.rescan else _floor(conn, kind.floor_key)
            end = (conn.execute(select(func.max(t.c.id))).scalar() or 0) + 1
        # From the next id there is (on PostgreSQL, ids come by blocks: gaps are common).
        lo = conn.execute(select(func.min(t.c.id)).where(t.c.id >= position)).scalar()
        if lo is None or lo >= end:
            self._set_floor(conn, kind, end)
            return Step(end, end, 0, self._held, True)
        hi = min(lo + self.chunk, end)
        in_range = (t.c.id >= lo, t.c.id < hi)
        due = (
            *in_range,
            unindexed(t.c.state).in_(kind.final),
            t.c[kind.ended] < self.before,
            kind.unpurged(t),
        )
        if self.dry_run:
            n = conn.execute(select(func.count()).select_from(t).where(*due)).scalar()
        else:
            n = conn.execute(update(t).where(*due).values(**kind.values)).rowcount
        # What still holds the floor in the range: rows not purged, unless they are not final
        # and long past their validity. And whether the whole range is recent.
        holds = and_(
            kind.unpurged(t),
            or_(unindexed(t.c.state).in_(kind.final), t.c.expires_at >= self.now - LATE),
        )
        holder, first_made = conn.execute(
            select(func.min(case((holds, t.c.id))), func.min(t.c[kind.made])).where(*in_range)
        ).one()
        self._set_floor(conn, kind, hi if holder is None else holder)
        done = hi >= end or (first_made is not None and first_made >= self.before)
        return Step(hi, end, n, self._held or holder is not None, done)

    def advance(self, step: Step) -> None:
        self._position, self._end, self._held = step.position, step.end, step.held
        self.purged += step.purged
        self.steps += 1
        self.done = step.done

    def _set_floor(self, conn: Connection, kind: _Kind, at: int) -> None:
        """Below `at`, every row is purged or passed for good (while none held it so far)."""
        if not self._held and not self.dry_run:
            _set_floor(conn, kind.floor_key, at)


def walks(before: float, now: float, **options) -> list[Walk]:
    """A purge of every table, in order."""
    return [Walk(table, before, now, **options) for table in TABLES]


def _floor(conn: Connection, key: str) -> int:
    value = conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()
    return int(value) if value is not None else 0


def _set_floor(conn: Connection, key: str, value: int) -> None:
    changed = conn.execute(
        update(settings).where(settings.c.key == key).values(value=str(value))
    ).rowcount
    if not changed:
        conn.execute(insert(settings).values(key=key, value=str(value)))


def purge(
    write: Callable,
    before: float,
    now: float,
    keep_going: Callable[[], bool] = lambda: True,
    chunk: int = CHUNK,
):
    """The purge through the writer (`write` is `Store.write`): one range a job, the next asked
    for once the last is committed, so that the rest of the switch's writes go between them.
    A Deferred of {table: rows purged}; `keep_going` is asked before each job (the server
    stops purging when it stops)."""
    from twisted.internet.defer import inlineCallbacks

    @inlineCallbacks
    def run():
        counts = {}
        for walk in walks(before, now, chunk=chunk):
            while not walk.done and keep_going():
                walk.advance((yield write(walk.step)))
            counts[walk.table] = walk.purged
        return counts

    return run()


def purge_in_transactions(engine, walk: Walk) -> int:
    """A walk run to its end from outside the server (`smsc db purge`): each step a
    transaction of its own (read-only in a dry run), so that a running server's writer waits
    for none of them long. Returns the rows purged."""
    from .db import writing

    while not walk.done:
        with engine.connect() if walk.dry_run else writing(engine) as conn:
            step = walk.step(conn)
        walk.advance(step)
    return walk.purged
