"""The `smsc` command line: the server, and the admin commands that work on the store named by
the config whether or not a server is running."""

import json
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from sqlalchemy.exc import DBAPIError

from . import config as configuration
from .store import accounts, db, messages
from .store.accounts import AccountError


class Context:
    def __init__(self, path: str):
        self.path = path
        self._config = None

    @property
    def config(self) -> configuration.Config:
        if self._config is None:
            try:
                self._config = configuration.load(self.path)
            except configuration.ConfigError as e:
                raise click.ClickException(str(e)) from None
        return self._config

    def engine(self, check: bool = True):
        engine = db.make_engine(self.config.store.url)
        if check:
            try:
                db.check_schema(engine)
            except db.SchemaBehind as e:
                raise click.ClickException(str(e)) from None
        return engine


pass_context = click.make_pass_decorator(Context)


class _Main(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DBAPIError as e:  # the store is unreachable, locked or read-only
            raise click.ClickException(f"store: {e.orig or e}") from None


@click.group(cls=_Main)
@click.option(
    "--config",
    "path",
    envvar="SMSC_CONFIG",
    default="conf/smsc.toml",
    show_default=True,
    help="Configuration file (also $SMSC_CONFIG).",
)
@click.pass_context
def main(ctx: click.Context, path: str) -> None:
    """smsc: SMPP server and SMS switch.

    \b
    Example:
      smsc --config conf/demo.toml db upgrade
      smsc --config conf/demo.toml serve
    """
    ctx.obj = Context(path)


@main.command()
@pass_context
def serve(ctx: Context) -> None:
    """Run the switch: everything the config names, on one reactor.

    \b
    Example:
      smsc --config conf/demo.toml serve
    """
    from twisted.internet.error import CannotListenError

    from .app import serve as run

    try:
        run(ctx.config)
    except (db.SchemaBehind, AccountError) as e:
        raise click.ClickException(str(e)) from None
    except CannotListenError as e:
        message = f"cannot listen on {e.interface}:{e.port}: {e.socketError}"
        raise click.ClickException(message) from None


# -- db ------------------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """The store's schema.

    \b
    Example:
      smsc db upgrade
    """


@db_group.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the store's schema to this version of smsc.

    \b
    Example:
      smsc --config conf/smsc.toml db upgrade
    """
    engine = ctx.engine(check=False)
    try:
        before, head = db.revisions(engine)
        db.upgrade(engine)
    except db.SchemaBehind as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"schema at {head}" + ("" if before == head else f" (was {before or 'empty'})"))


# -- accounts ------------------------------------------------------------------------------


def _account_dict(a: accounts.Account) -> dict:
    return {
        "system_id": a.system_id,
        "enabled": a.enabled,
        "max_binds": a.max_binds,
        "tps": a.tps,
        "created_at": _iso(a.created_at),
    }


@main.group("account")
def account_group() -> None:
    """Client accounts (the system_ids ESMEs bind with).

    \b
    Example:
      smsc account add acme --password s3cret
      smsc account list
    """


@account_group.command("add")
@click.argument("system_id")
@click.option("--password", required=True, help="At most 8 characters (SMPP).")
@click.option("--tps", type=int, default=0, show_default=True, help="Submits/s cap, 0 = none.")
@click.option("--max-binds", type=int, default=accounts.DEFAULT_MAX_BINDS, show_default=True)
@pass_context
def account_add(ctx: Context, system_id: str, password: str, tps: int, max_binds: int) -> None:
    """Add an account.

    \b
    Example:
      smsc account add acme --password s3cret --tps 50 --max-binds 4
    """
    with _admin(ctx) as conn:
        accounts.add(conn, system_id, password, time.time(), max_binds=max_binds, tps=tps)
    click.echo(f"account {system_id} added")


@account_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def account_list(ctx: Context, as_json: bool) -> None:
    """List accounts.

    \b
    Example:
      smsc account list --json
    """
    with ctx.engine().connect() as conn:
        rows = [_account_dict(a) for a in accounts.all_accounts(conn)]
    _output(rows, as_json, ["system_id", "enabled", "max_binds", "tps", "created_at"])


@account_group.command("show")
@click.argument("system_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def account_show(ctx: Context, system_id: str, as_json: bool) -> None:
    """Show one account.

    \b
    Example:
      smsc account show acme
    """
    with ctx.engine().connect() as conn:
        try:
            account = accounts.require(conn, system_id)
        except AccountError as e:
            raise click.ClickException(str(e)) from None
    _output_one(_account_dict(account), as_json)


@account_group.command("set")
@click.argument("system_id")
@click.option("--password", help="A new password (at most 8 characters).")
@click.option("--tps", type=int, help="Submits/s cap, 0 = none.")
@click.option("--max-binds", type=int)
@click.option("--enable/--disable", "enabled", default=None, help="Allow or refuse binds.")
@pass_context
def account_set(ctx: Context, system_id: str, password, tps, max_binds, enabled) -> None:
    """Change an account; new values apply from its next bind.

    \b
    Example:
      smsc account set acme --tps 100 --disable
    """
    if (password, tps, max_binds, enabled) == (None, None, None, None):
        raise click.UsageError("nothing to change: give at least one option")
    with _admin(ctx) as conn:
        accounts.change(
            conn, system_id, password=password, tps=tps, max_binds=max_binds, enabled=enabled
        )
    click.echo(f"account {system_id} changed")


@account_group.command("passwd")
@click.argument("system_id")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@pass_context
def account_passwd(ctx: Context, system_id: str, password: str) -> None:
    """Set an account's password (asked for when not given).

    \b
    Example:
      smsc account passwd acme
    """
    with _admin(ctx) as conn:
        accounts.change(conn, system_id, password=password)
    click.echo(f"password of {system_id} changed")


@account_group.command("remove")
@click.argument("system_id")
@pass_context
def account_remove(ctx: Context, system_id: str) -> None:
    """Remove an account that has no messages (disable one that has).

    \b
    Example:
      smsc account remove acme
    """
    with _admin(ctx) as conn:
        accounts.remove(conn, system_id)
    click.echo(f"account {system_id} removed")


# -- messages and the queue ----------------------------------------------------------------


@main.group("message")
def message_group() -> None:
    """Single messages.

    \b
    Example:
      smsc message show 42
    """


@message_group.command("show")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def message_show(ctx: Context, message_id: str, as_json: bool) -> None:
    """Show a message by the id its client got.

    \b
    Example:
      smsc message show 42
    """
    if not message_id.isdigit():
        raise click.ClickException(f"{message_id!r} is not a message id")
    with ctx.engine().connect() as conn:
        message = messages.get(conn, int(message_id))
        if message is None:
            raise click.ClickException(f"no message {message_id}")
        owner = accounts.by_id(conn, message.account_id)
    _output_one(
        {
            "id": str(message.id),
            "account": owner.system_id,
            "state": message.state,
            "source": message.source,
            "destination": message.destination,
            "service_type": message.service_type,
            "data_coding": message.data_coding,
            "length": len(message.body),
            "registered_delivery": message.registered_delivery,
            "submitted_at": _iso(message.submitted_at),
            "due_at": _iso(message.due_at),
            "expires_at": _iso(message.expires_at),
            "updated_at": _iso(message.updated_at),
        },
        as_json,
    )


@main.group("queue")
def queue_group() -> None:
    """The message queue.

    \b
    Example:
      smsc queue stats
    """


@queue_group.command("stats")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def queue_stats(ctx: Context, as_json: bool) -> None:
    """Count messages by state.

    \b
    Example:
      smsc queue stats --json
    """
    with ctx.engine().connect() as conn:
        counts = messages.count_by_state(conn)
    rows = [{"state": s.value, "messages": counts.get(s.value, 0)} for s in messages.State]
    _output(rows, as_json, ["state", "messages"])


# -- helpers -------------------------------------------------------------------------------


@contextmanager
def _admin(ctx: Context):
    """A writing transaction whose AccountError becomes a one-line CLI error."""
    try:
        with db.writing(ctx.engine()) as conn:
            yield conn
    except AccountError as e:
        raise click.ClickException(str(e)) from None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _output(rows: list[dict], as_json: bool, columns: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    cells = [columns] + [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _output_one(row: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    width = max(map(len, row))
    for key, value in row.items():
        click.echo(f"{key.ljust(width)}  {value}")


# -- bench ---------------------------------------------------------------------------------


@main.command()
@click.option("--mode", type=click.Choice(["submit"]), default="submit", show_default=True)
@click.option("--binds", type=int, default=8, show_default=True, help="Client binds.")
@click.option("--window", type=int, default=10, show_default=True, help="Outstanding per bind.")
@click.option("--messages", type=int, default=100_000, show_default=True, help="Measured, in all.")
@click.option("--warmup", type=int, help="Sent first, unmeasured  [default: messages/10, ≤ 5000]")
@click.option("--target", metavar="HOST:PORT", help="Bench a running switch instead.")
@click.option("--system-id", default="bench", show_default=True, help="With --target.")
@click.option("--password", default="bench", show_default=True, help="With --target.")
@click.option("--pid", type=int, help="With --target: its pid, for its peak RSS.")
@click.option("--store-url", help="The switch's store  [default: a temporary SQLite file]")
@click.option("--ceiling/--no-ceiling", default=True, help="Also measure the echo server.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Stall limit, s.")
def bench(**options) -> None:
    """Measure accepted submit_sm/s, latency and peak RSS against the protocol ceiling; print
    one JSON line. Starts its own switch on a temporary SQLite store unless --target is given.

    \b
    Example:
      smsc bench --binds 8 --window 10 --messages 100000
    """
    from . import bench as benchmark

    try:
        click.echo(json.dumps(benchmark.run(benchmark.Options(**options))))
    except benchmark.BenchError as e:
        raise click.ClickException(str(e)) from None
