"""Credit: what a message costs, and every movement of an account's balance.

Amounts are whole thousandths of a credit (a part at 1 credit costs 1000): exact in both stores,
and a price may be a fraction of a credit. An account's `balance` is the sum of its ledger, for
both kinds of account: a prepaid one never spends below 0; a postpaid one goes below 0 by what
it used.

Messages are charged by the writer, in the transaction that stores them (`Till`, on the
driver's cursor: the submit path). Refunds and adjustments are made by the jobs that change a
message's state or text, in theirs.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import Connection, func, insert, select, update

from .db import chunks, insert_many
from .schema import accounts, ledger, tariffs

MILLI = 1000  # one credit
MOST = 10**15  # an amount, price or threshold: a trillion credits, far inside a BIGINT
TOPUP, CHARGE, REFUND, ADJUST = "topup", "charge", "refund", "adjust"
# Why a message is refunded: what never left is always refunded (cancelled, or refused by the
# switch at sending time: an opt-out since it was accepted); expired unsent and rejected by a
# carrier by the account's policy. A message a carrier took and failed to deliver is not.
CANCELLED, REFUSED, EXPIRED, REJECTED = "cancelled", "refused", "expired", "rejected"
_POLICY = {EXPIRED: accounts.c.refund_expired, REJECTED: accounts.c.refund_rejected}
LEDGER_COLUMNS = ("account_id", "at", "kind", "amount", "message_id", "note")


class CreditError(ValueError):
    """An amount or price that cannot be one, or a movement an account cannot take."""


def parse(text: str, what: str = "amount") -> int:
    """'12.5' → 12500. At most three decimals; never negative."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CreditError(f"{what} {text!r} is not a number") from None
    if not value.is_finite():
        raise CreditError(f"{what} {text!r} is not a number")
    milli = value * MILLI
    if milli != milli.to_integral_value():
        raise CreditError(f"{what} {text!r}: at most three decimals")
    if milli < 0:
        raise CreditError(f"{what} {text!r} is negative")
    if milli > MOST:
        raise CreditError(f"{what} {text!r}: at most {show(MOST)}")
    return int(milli)


def show(amount: int) -> str:
    """12500 → '12.500'."""
    return str(Decimal(amount).scaleb(-3))


class Tariff:
    """The price of a part to a number: the longest matching prefix, else the default."""

    def __init__(self, prices: dict[str, int]):
        self._prices = prices
        self._lengths = sorted({len(p) for p in prices if p}, reverse=True)
        self.default = prices.get("", MILLI)

    def price(self, number: str) -> int:
        prices = self._prices
        for n in self._lengths:
            price = prices.get(number[:n])
            if price is not None:
                return price
        return self.default


def tariff(conn: Connection) -> Tariff:
    return Tariff(dict(conn.execute(select(tariffs.c.prefix, tariffs.c.price)).all()))


@dataclass(slots=True)
class _Purse:
    prepaid: bool
    balance: int
    low: int
    system_id: str
    spent: int = 0


class Till:
    """The charges of one writer batch, on the driver's cursor: the tariff and the batch's
    accounts are read once (prepaid ones locked on PostgreSQL, so that nodes charging the same
    account take turns), each message is charged or refused in order, and `close` writes the
    ledger rows and the balances."""

    def __init__(self, cursor, postgresql: bool, account_ids: Iterable[int]):
        mark = "%s" if postgresql else "?"
        cursor.execute("SELECT prefix, price FROM tariffs")
        self.price = Tariff(dict(cursor.fetchall())).price
        ids = sorted(set(account_ids))
        cursor.execute(
            "SELECT id, prepaid, balance, low_balance, system_id FROM accounts "
            f"WHERE id IN ({', '.join([mark] * len(ids))})",
            ids,
        )
        self._purses = {row[0]: _Purse(bool(row[1]), row[2], row[3], row[4]) for row in cursor}
        prepaid = [i for i in ids if self._purses[i].prepaid]
        if postgresql and prepaid:  # the balances that decide, read again under a lock
            cursor.execute(
                f"SELECT id, balance FROM accounts WHERE id IN ({', '.join([mark] * len(prepaid))})"
                " ORDER BY id FOR UPDATE",
                prepaid,
            )
            for account_id, balance in cursor:
                self._purses[account_id].balance = balance
        self._rows: list[tuple] = []

    def take(self, account_id: int, cost: int) -> bool:
        """Whether the account can pay `cost`, and if so, it is spent."""
        purse = self._purses[account_id]
        if purse.prepaid and purse.balance - purse.spent < cost:
            return False
        purse.spent += cost
        return True

    def charge(self, account_id: int, first_id: int, costs: list[int], at: float) -> None:
        """Ledger rows for messages numbered from `first_id` that `take` paid for."""
        self._rows += [
            (account_id, at, CHARGE, -cost, first_id + i, "") for i, cost in enumerate(costs)
        ]

    def close(self, cursor, postgresql: bool) -> list[tuple[str, int, int]]:
        """Write what was charged. Returns (system_id, balance, threshold) for the prepaid
        accounts this batch took below their low-balance threshold."""
        if not self._rows:
            return []
        insert_many(cursor, postgresql, "ledger", LEDGER_COLUMNS, self._rows)
        mark = "%s" if postgresql else "?"
        spent = [(-p.spent, i) for i, p in self._purses.items() if p.spent]
        update = f"UPDATE accounts SET balance = balance + {mark} WHERE id = {mark}"
        cursor.executemany(update, spent)
        return [
            (p.system_id, p.balance - p.spent, p.low)
            for p in self._purses.values()
            if p.prepaid and p.balance >= p.low > p.balance - p.spent
        ]


def _charged(conn: Connection, ids: list[int], why: str | None = None) -> list:
    """(account id, message id, what it was charged in all) for the messages that were charged
    and, for a refund `why` that depends on it, whose account's policy refunds it."""
    query = (
        select(ledger.c.account_id, ledger.c.message_id, -func.sum(ledger.c.amount))
        .where(ledger.c.kind.in_((CHARGE, ADJUST)))
        .group_by(ledger.c.account_id, ledger.c.message_id)
    )
    policy = _POLICY.get(why)
    if policy is not None:
        query = query.join(accounts, accounts.c.id == ledger.c.account_id).where(policy)
    found = []
    for chunk in chunks(ids):
        rows = conn.execute(query.where(ledger.c.message_id.in_(chunk)))
        found += [(a, m, int(amount)) for a, m, amount in rows]  # PostgreSQL sums as numeric
    return found


def refund(conn: Connection, ids: list[int], why: str, now: float) -> None:
    """Give back what these messages cost (they just left the queue without being sent, or a
    carrier refused them): once each, by the account's policy for `why`."""
    charged = _charged(conn, ids, why)
    if charged:
        _move(conn, [(a, now, REFUND, amount, m, why) for a, m, amount in charged if amount])


def reprice(conn: Connection, waiting: list, parts: int, now: float) -> bool:
    """replace_sm gave waiting messages ((id, destination) pairs) a text of `parts` parts:
    charge or give back the difference. False, and nothing moved, when a prepaid account
    cannot pay what more it costs."""
    destinations = dict(waiting)
    charged = _charged(conn, list(destinations))
    if not charged:
        return True  # stored before the ledger: never charged, never repriced
    price = tariff(conn).price
    rows = []
    for account_id, message_id, paid in charged:
        delta = parts * price(destinations[message_id]) - paid
        if delta:
            rows.append((account_id, now, ADJUST, -delta, message_id, "replace_sm"))
    more = -sum(row[3] for row in rows)
    if more > 0:
        account = conn.execute(
            _locked(conn, select(accounts.c.prepaid, accounts.c.balance)).where(
                accounts.c.id == charged[0][0]
            )
        ).one()
        if account.prepaid and account.balance < more:
            return False
    _move(conn, rows)
    return True


def top_up(conn: Connection, account_id: int, amount: int, now: float, note: str = "") -> int:
    """Add credit to an account; returns its balance."""
    if amount <= 0:
        raise CreditError("a top-up must be more than 0")
    _move(conn, [(account_id, now, TOPUP, amount, None, note)])
    return conn.execute(select(accounts.c.balance).where(accounts.c.id == account_id)).scalar()


def balances(conn: Connection) -> list[tuple[str, int, int]]:
    """(system_id, balance, low-balance threshold) of the prepaid accounts, for the metrics."""
    query = select(accounts.c.system_id, accounts.c.balance, accounts.c.low_balance)
    return [tuple(row) for row in conn.execute(query.where(accounts.c.prepaid))]


def history(
    conn: Connection, account_id: int, since: float | None = None, until: float | None = None
) -> list[dict]:
    query = select(ledger).where(ledger.c.account_id == account_id).order_by(ledger.c.id)
    if since is not None:
        query = query.where(ledger.c.at >= since)
    if until is not None:
        query = query.where(ledger.c.at < until)
    return [dict(row._mapping) for row in conn.execute(query)]


def ledger_sum(conn: Connection, account_id: int) -> int:
    total = select(func.coalesce(func.sum(ledger.c.amount), 0))
    return int(conn.execute(total.where(ledger.c.account_id == account_id)).scalar())


def set_price(conn: Connection, prefix: str, price: int) -> None:
    conn.execute(tariffs.delete().where(tariffs.c.prefix == prefix))
    conn.execute(insert(tariffs).values(prefix=prefix, price=price))


def remove_price(conn: Connection, prefix: str) -> bool:
    return conn.execute(tariffs.delete().where(tariffs.c.prefix == prefix)).rowcount > 0


def prices(conn: Connection) -> list[tuple[str, int]]:
    return conn.execute(select(tariffs.c.prefix, tariffs.c.price).order_by(tariffs.c.prefix)).all()


def _locked(conn: Connection, query):
    return query.with_for_update() if conn.dialect.name == "postgresql" else query


def _move(conn: Connection, rows: list[tuple]) -> None:
    """Ledger rows (LEDGER_COLUMNS) and the balances they change, accounts in id order (two
    nodes' transactions lock them in the same order)."""
    if not rows:
        return
    conn.execute(insert(ledger), [dict(zip(LEDGER_COLUMNS, row, strict=True)) for row in rows])
    deltas: dict[int, int] = {}
    for row in rows:
        deltas[row[0]] = deltas.get(row[0], 0) + row[3]
    for account_id in sorted(deltas):
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(balance=accounts.c.balance + deltas[account_id])
        )
