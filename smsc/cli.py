"""The `smsc` command line: the server, and the admin commands that work on the store named by
the config whether or not a server is running."""

import json
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from sqlalchemy.exc import DBAPIError

from . import addresses, hours, limits
from . import config as configuration
from .store import accounts, credit, db, lockouts, mail_senders, messages, optouts, senders, tokens
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
            message = " ".join(str(e.orig or e).split())  # one line (libpq's has several)
            raise click.ClickException(f"store: {message}") from None


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
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text or as one JSON object each (default: [logging] format, text).",
)
@pass_context
def serve(ctx: Context, log_format: str | None) -> None:
    """Run the switch: everything the config names, on one reactor.

    \b
    Example:
      smsc --config conf/demo.toml serve --log-format json
    """
    from twisted.internet.error import CannotListenError

    from .app import serve as run
    from .store.nodes import NodeTaken

    try:
        run(ctx.config, log_format)
    except (db.SchemaBehind, AccountError, NodeTaken, configuration.ConfigError) as e:
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


@db_group.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=1),
    help="Days since a message ended  [default: [retention] messages_days, 90]",
)
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
@click.option(
    "--rescan",
    is_flag=True,
    help="Look at every row from the first, not from where the last purge stopped.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_context
def db_purge(ctx: Context, days: int | None, dry_run: bool, rescan: bool, as_json: bool) -> None:
    """Forget the texts and numbers of messages finished more than --older-than days ago, and
    of the receipts and replies delivered to (or expired for) clients that long ago. Ids,
    states, times, carriers, errors and the credit ledger stay; alphanumeric sender ids stay.
    Messages waiting or in flight are never touched. The server runs the same purge once a
    day; this one works in short transactions, beside a running server or not.

    \b
    Example:
      smsc db purge --dry-run
      smsc db purge --older-than 30 --json
    """
    from .store import retention

    if days is None:
        days = ctx.config.retention.messages_days
        if not days:
            raise click.ClickException(
                "[retention] messages_days = 0 keeps messages for ever: give --older-than DAYS"
            )
    engine = ctx.engine()
    now = time.time()
    before = now - days * retention.DAY
    counts = {}
    try:
        for walk in retention.walks(before, now, dry_run=dry_run, rescan=rescan):
            counts[walk.table] = retention.purge_in_transactions(engine, walk)
    finally:
        engine.dispose()
    row = {
        "messages": counts["messages"],
        "outbox": counts["outbox"],
        "older_than_days": days,
        "before": _iso(before),
        "dry_run": dry_run,
    }
    if as_json:
        click.echo(json.dumps(row))
        return
    verb = "would purge" if dry_run else "purged"
    click.echo(
        f"{verb} the texts and numbers of {row['messages']} messages and {row['outbox']} "
        f"outbox rows finished before {row['before']} ({days} days ago)"
    )


# -- accounts ------------------------------------------------------------------------------


def _account_dict(a: accounts.Account) -> dict:
    return {
        "system_id": a.system_id,
        "enabled": a.enabled,
        "max_binds": a.max_binds,
        "tps": a.tps,
        "created_at": _iso(a.created_at),
        "traffic": "marketing" if a.marketing else "transactional",
        "sending_hours": a.sending_hours or hours.DEFAULT,
        "timezone": a.timezone,
        "holidays": a.holidays,
        "validity": a.default_validity,
        "max_validity": a.max_validity,
        "senders": sorted(a.senders),
        "company": a.company,
        "contact": a.contact,
        "website": a.website,
        "mobile_senders": a.mobile_senders,
        "stop_mention": a.stop_mention,
        "billing": "prepaid" if a.prepaid else "postpaid",
        "balance": credit.show(a.balance),
        "balance_milli": a.balance,
        "low_balance": credit.show(a.low_balance),
        "low_balance_milli": a.low_balance,
        "refund_expired": a.refund_expired,
        "refund_rejected": a.refund_rejected,
        "networks": a.networks.split(),
        "reply_url": a.reply_url,
    }


def _identity_options(command):
    """The options of an account's senders and identity, shared by `account add` and `set`."""
    options = [
        click.option(
            "--sender",
            "added_senders",
            multiple=True,
            metavar="ADDR",
            help="A sender it may use: an alphanumeric id (ACME), a short code (36180) or a "
            "number (0937123456); repeatable, adds to its senders.",
        ),
        click.option("--company", metavar="TEXT", help="Its company name (CONTACT answer)."),
        click.option("--contact", metavar="TEXT", help="How to reach it (CONTACT answer)."),
        click.option("--website", metavar="TEXT", help="Its website (CONTACT answer)."),
        click.option(
            "--reply-url",
            metavar="URL",
            help="Where its subscribers' replies are POSTed as JSON, for a client of the HTTP "
            'API; "" removes it (replies then wait for an SMPP receiver bind).',
        ),
        click.option(
            "--mobile-senders/--no-mobile-senders",
            default=None,
            help="Allow 06/07 mobile numbers as senders (ARCEP 2022-1583: person-to-person "
            "only; refused by default).",
        ),
        click.option(
            "--stop-mention",
            type=click.Choice(accounts.STOP_MENTIONS),
            help="A promotional text without a STOP mention gets one appended, or is "
            "refused [append].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _billing_options(command):
    """The options of an account's credit, shared by `account add` and `set`."""
    options = [
        click.option(
            "--prepaid/--postpaid",
            "prepaid",
            default=None,
            help="Prepaid: it sends while its balance pays for a message (topped up with "
            "`smsc account credit add`); postpaid: no limit, its usage is counted [postpaid].",
        ),
        click.option(
            "--low-balance",
            metavar="AMOUNT",
            callback=_credits_option,
            help="Alert (a metric and a log line) when a prepaid balance goes below this many "
            "credits, up to 3 decimals; 0: no alert [0].",
        ),
        click.option(
            "--refund-expired/--no-refund-expired",
            default=None,
            help="Give back what a message cost when it expires unsent [refund].",
        ),
        click.option(
            "--refund-rejected/--no-refund-rejected",
            default=None,
            help="Give back what a message cost when a carrier rejects it [refund]. A message "
            "cancelled before it is sent is always refunded.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _credits_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """An option's amount of credits, in thousandths (None: not given)."""
    return None if value is None else _credits(value, param.opts[0])


def _is_number(address: str) -> bool:
    digits = address.removeprefix("+")
    return digits.isascii() and digits.isdigit()


def _sender_key(address: str) -> str:
    """How the store keeps a sender: numbers in E.164 when they are long (TON unknown: 06…,
    0033…, +33… and 33… alike), short codes as they are, alphanumeric ids in upper case."""
    return addresses.sender(address, 0 if _is_number(address) else 5)


def _checked_sender(address: str, mobile_allowed: bool) -> str:
    if not _is_number(address):
        if not addresses.valid_source(address, 5):
            raise AccountError(
                f"--sender {address!r}: an alphanumeric sender is 1 to 11 letters and digits, "
                "without spaces or punctuation"
            )
        return _sender_key(address)
    key = _sender_key(address)
    if (
        not addresses.valid_source(address, 0)
        or not key.isdigit()
        or (address.startswith("+") and len(key) < 8)  # a short code has no country
        or key[0] == "0"
        or (len(key) >= 8 and addresses.e164(key) is None)
    ):
        raise AccountError(
            f"--sender {address!r}: a number is a short code (36180), a French number "
            "(0937123456) or an international one (+44…), 3 to 15 digits"
        )
    if addresses.is_mobile(key) and not mobile_allowed:
        raise AccountError(
            f"--sender {address}: 06/07 mobile numbers are for person-to-person use (ARCEP "
            "2022-1583); allow them on this account with --mobile-senders"
        )
    return key


def _change_senders(conn, account: accounts.Account, added, removed, mobile_off: bool) -> None:
    """Remove then add an account's senders; with mobile_off (--no-mobile-senders given), refuse
    to leave it a mobile sender."""
    for address in removed:
        if not senders.remove(conn, account.id, _sender_key(address)):
            raise AccountError(f"account {account.system_id} has no sender {address}")
    for address in added:
        senders.add(conn, account.id, _checked_sender(address, account.mobile_senders))
    mobile = [a for a in senders.of(conn, account.id) if addresses.is_mobile(a)]
    if mobile_off and mobile:
        raise AccountError(
            f"account {account.system_id} sends from mobile numbers ({' '.join(mobile)}): "
            "remove them with --remove-sender to refuse mobile senders"
        )


def _changed_networks(account: accounts.Account, allowed, removed) -> str | None:
    """The account's networks once `removed` are taken out and `allowed` added (canonical,
    separated by spaces); None when neither is given."""
    if not allowed and not removed:
        return None
    networks = account.networks.split()
    for option, given in (("--remove-network", removed), ("--allow-network", allowed)):
        for text in given:
            try:
                network = limits.parse_network(text)
            except ValueError as e:
                raise AccountError(f"{option} {e}") from None
            if option == "--allow-network" and network not in networks:
                networks.append(network)
            elif option == "--remove-network":
                if network not in networks:
                    raise AccountError(f"account {account.system_id} has no network {network}")
                networks.remove(network)
    return " ".join(networks)


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
@_identity_options
@_billing_options
@pass_context
def account_add(
    ctx: Context, system_id: str, password: str, tps: int, max_binds: int, added_senders, **values
) -> None:
    """Add an account.

    \b
    Example:
      smsc account add acme --password s3cret --tps 50 --max-binds 4
      smsc account add shop --password s3cret --sender SHOP --sender 36180 --company "Shop SA"
      smsc account add kiosk --password s3cret --prepaid --low-balance 100
    """
    with _admin(ctx) as conn:
        accounts.add(conn, system_id, password, time.time(), max_binds=max_binds, tps=tps)
        account = accounts.change(conn, system_id, **values)
        _change_senders(conn, account, added_senders, (), mobile_off=False)
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
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
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
    row = _account_dict(account)
    if not as_json:
        row["senders"] = " ".join(row["senders"]) or "- (any valid sender)"
        row["networks"] = " ".join(row["networks"]) or "- (binds from anywhere)"
        row.update({k: row[k] or "-" for k in ("company", "contact", "website", "reply_url")})
        del row["balance_milli"], row["low_balance_milli"]
        if not account.low_balance:
            row["low_balance"] = "- (no alert)"
    _output_one(row, as_json)


@account_group.command("set")
@click.argument("system_id")
@click.option("--password", help="A new password (at most 8 characters).")
@click.option("--tps", type=int, help="Submits/s cap, 0 = none.")
@click.option("--max-binds", type=int)
@click.option("--enable/--disable", "enabled", default=None, help="Allow or refuse binds.")
@click.option(
    "--marketing/--transactional",
    "marketing",
    default=None,
    help="Promotional traffic is held outside its sending hours.",
)
@click.option(
    "--sending-hours",
    metavar="SPEC",
    help=f'When promotional messages may go, e.g. "{hours.DEFAULT}" (the default).',
)
@click.option("--timezone", metavar="ZONE", help="Of the sending hours [Europe/Paris].")
@click.option("--holidays", type=click.Choice(["fr", "none"]), help="Public holidays: no sending.")
@click.option(
    "--validity",
    "default_validity",
    type=int,
    metavar="SECONDS",
    help="How long a message is tried when its client gives no validity [172800].",
)
@click.option("--max-validity", type=int, metavar="SECONDS",
              help="How long a message is tried at most [604800].")  # fmt: skip
@_identity_options
@_billing_options
@click.option(
    "--remove-sender",
    "removed_senders",
    multiple=True,
    metavar="ADDR",
    help="A sender it may no longer use; repeatable.",
)
@click.option(
    "--allow-network",
    "allowed_networks",
    multiple=True,
    metavar="CIDR",
    help="A network it may bind from (10.0.0.0/8, 2001:db8::/32, or one address); "
    "repeatable, adds to its networks. An account without networks binds from anywhere.",
)
@click.option(
    "--remove-network",
    "removed_networks",
    multiple=True,
    metavar="CIDR",
    help="A network it may no longer bind from; repeatable.",
)
@pass_context
def account_set(
    ctx: Context, system_id: str, password, added_senders, removed_senders, **values
) -> None:
    """Change an account; new values apply from its next bind, or within seconds for a bound
    one's messages.

    Senders are kept normalised: long numbers in E.164 (0937123456 → 33937123456), short
    codes as they are, alphanumeric ids in upper case. An account without senders may send
    from any valid address.

    \b
    Example:
      smsc account set acme --tps 100 --disable
      smsc account set shop --marketing --sending-hours "mon-fri 09:00-20:00"
      smsc account set shop --sender SHOP --sender 36180 --remove-sender OLDSHOP
      smsc account set shop --company "Shop SA" --website shop.example --stop-mention refuse
      smsc account set kiosk --prepaid --low-balance 50.5 --no-refund-rejected
      smsc account set acme --allow-network 192.0.2.0/24 --allow-network 2001:db8::/48
      smsc account set acme --remove-network 192.0.2.0/24
    """
    allowed, removed = values.pop("allowed_networks"), values.pop("removed_networks")
    nothing = password is None and all(v is None for v in values.values())
    if nothing and not (added_senders or removed_senders or allowed or removed):
        raise click.UsageError("nothing to change: give at least one option")
    with _admin(ctx) as conn:
        before = accounts.require(conn, system_id)
        try:  # the sending hours as a whole, as they will be
            hours.SendingHours.parse(
                values["sending_hours"] or before.sending_hours or hours.DEFAULT,
                values["timezone"] or before.timezone,
                values["holidays"] or before.holidays,
            )
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        values["networks"] = _changed_networks(before, allowed, removed)
        account = accounts.change(conn, system_id, password=password, **values)
        mobile_off = values["mobile_senders"] is False
        _change_senders(conn, account, added_senders, removed_senders, mobile_off)
    click.echo(f"account {system_id} changed")
    if values["networks"] is not None:
        where = account.networks.replace(" ", ", ") or "anywhere"
        click.echo(f"{system_id} binds from {where}")
    if values["prepaid"] and account.balance < 0:
        click.echo(
            f"warning: {system_id} is prepaid with a balance of {credit.show(account.balance)}: "
            f"it sends once topped up (smsc account credit add {system_id} AMOUNT)",
            err=True,
        )


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


@account_group.group("token")
def token_group() -> None:
    """Bearer tokens for the HTTP API (README, "HTTP API").

    A token is printed once, when it is made: the store keeps only its SHA-256, and lists it
    by a fingerprint (the first hex digits of that hash). A request with
    `Authorization: Bearer TOKEN` acts for the account while it is enabled, from its networks.

    \b
    Example:
      smsc account token add acme --label "billing app"
      smsc account token list acme
      smsc account token revoke acme 3f2a9c0d41be
    """


@token_group.command("add")
@click.argument("system_id")
@click.option("--label", default="", metavar="TEXT", help="What the token is for.")
@pass_context
def token_add(ctx: Context, system_id: str, label: str) -> None:
    """Make a token for an account and print it (only this once).

    \b
    Example:
      smsc account token add acme --label "billing app"
    """
    with _admin(ctx) as conn:
        account = accounts.require(conn, system_id)
        token = tokens.add(conn, account.id, label, time.time())
    click.echo(token)


@token_group.command("list")
@click.argument("system_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def token_list(ctx: Context, system_id: str, as_json: bool) -> None:
    """List an account's tokens: fingerprint, label, created_at.

    \b
    Example:
      smsc account token list acme --json
    """
    with _reading(ctx) as conn:
        account = accounts.require(conn, system_id)
        rows = [{**t, "created_at": _iso(t["created_at"])} for t in tokens.of(conn, account.id)]
    if not as_json:
        for row in rows:
            row["label"] = row["label"] or "-"
    _output(rows, as_json, ["fingerprint", "label", "created_at"])


@token_group.command("revoke")
@click.argument("system_id")
@click.argument("fingerprint")
@pass_context
def token_revoke(ctx: Context, system_id: str, fingerprint: str) -> None:
    """Revoke an account's token by its fingerprint (`smsc account token list`).

    \b
    Example:
      smsc account token revoke acme 3f2a9c0d41be
    """
    with _admin(ctx) as conn:
        account = accounts.require(conn, system_id)
        if not tokens.revoke(conn, account.id, fingerprint):
            raise click.ClickException(f"account {system_id} has no token {fingerprint}")
    click.echo(f"token {fingerprint} of {system_id} revoked")


@account_group.group("email")
def email_group() -> None:
    """The email addresses that send SMS for an account (README, "Email to SMS").

    A mail from a registered address to <number>@<[smtp] domain> is sent as an SMS by the
    address's account (from one of the account's networks, if it has any). With --reports,
    the results are mailed back: what was accepted or refused, then each receipt.

    \b
    Example:
      smsc account email add acme ops@acme.example --reports
      smsc account email list acme
      smsc account email remove ops@acme.example
    """


@email_group.command("add")
@click.argument("system_id")
@click.argument("address")
@click.option(
    "--reports/--no-reports",
    default=False,
    show_default=True,
    help="Mail the results (accepted or refused, then each receipt) back to ADDRESS.",
)
@pass_context
def email_add(ctx: Context, system_id: str, address: str, reports: bool) -> None:
    """Let ADDRESS send SMS for an account (adding it again changes --reports).

    \b
    Example:
      smsc account email add acme ops@acme.example --reports
    """
    with _admin(ctx) as conn:
        address = mail_senders.normalise(address)
        account = accounts.require(conn, system_id)
        mail_senders.add(conn, account.id, address, reports, time.time())
    mailed = " (results mailed back)" if reports else ""
    click.echo(f"{address} sends SMS for {system_id}{mailed}")


@email_group.command("list")
@click.argument("system_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def email_list(ctx: Context, system_id: str | None, as_json: bool) -> None:
    """List the addresses that send SMS (of one account, or of all).

    \b
    Example:
      smsc account email list acme --json
    """
    with _reading(ctx) as conn:
        account_id = None if system_id is None else accounts.require(conn, system_id).id
        rows = [
            {"address": s.address, "system_id": s.system_id, "reports": s.reports,
             "created_at": _iso(s.created_at)}
            for s in mail_senders.listing(conn, account_id)
        ]  # fmt: skip
    _output(rows, as_json, ["address", "system_id", "reports", "created_at"])


@email_group.command("remove")
@click.argument("address")
@pass_context
def email_remove(ctx: Context, address: str) -> None:
    """Stop ADDRESS from sending SMS.

    \b
    Example:
      smsc account email remove ops@acme.example
    """
    with _admin(ctx) as conn:
        address = mail_senders.normalise(address)
        if not mail_senders.remove(conn, address):
            raise AccountError(f"{address} is not a registered email sender")
    click.echo(f"{address} removed")


# -- credit: balances, the ledger, the tariff ------------------------------------------------

HISTORY_COLUMNS = ["at", "kind", "amount", "message_id", "note"]
TARIFF_COLUMNS = ["prefix", "price", "source"]
# Takes AMOUNT and PRICE of -5 as arguments (to refuse them with a clear error), not options.
_NUMBER_ARGUMENTS = {"ignore_unknown_options": True}


def _credits(text: str, what: str) -> int:
    """Credits with up to three decimals ('12.5') in thousandths (12500), or a one-line error."""
    try:
        return credit.parse(text, what)
    except credit.CreditError as e:
        raise click.ClickException(str(e)) from None


def _instant(text: str | None, option: str) -> float | None:
    """A date (YYYY-MM-DD: its midnight) or an ISO datetime, in UTC unless it has an offset."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.ClickException(
            f"{option} {text!r}: not a date (2026-01-31) or an ISO datetime "
            "(2026-01-31T12:00:00, UTC unless it has an offset: 2026-01-31T12:00:00+01:00)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@account_group.group("credit")
def credit_group() -> None:
    """An account's credit: its balance and its ledger.

    Amounts are credits with up to three decimals. A message costs its parts times the price
    of its destination (`smsc tariff`). A prepaid account sends while its balance pays for a
    message; a postpaid one has no limit and its balance goes below 0 by what it used. The
    balance is always the sum of the ledger: every top-up, charge and refund.

    \b
    Example:
      smsc account credit add acme 500 --note "invoice 2026-014"
      smsc account credit show acme
      smsc account credit history acme --since 2026-01-01 --json
    """


@credit_group.command("add", context_settings=_NUMBER_ARGUMENTS)
@click.argument("system_id")
@click.argument("amount")
@click.option("--note", default="", metavar="TEXT", help="Kept in the ledger (an invoice...).")
@pass_context
def credit_add(ctx: Context, system_id: str, amount: str, note: str) -> None:
    """Top an account up by AMOUNT credits (more than 0, up to 3 decimals) and print its new
    balance. On a postpaid account, a payment against its usage.

    \b
    Example:
      smsc account credit add acme 500
      smsc account credit add acme 12.5 --note "invoice 2026-014"
    """
    negative = amount.strip().startswith("-")
    milli = _credits(amount.strip().removeprefix("-"), "amount")
    if negative or not milli:
        raise click.ClickException(f"amount {amount}: a top-up must be more than 0")
    if len(note) > 200:
        raise click.ClickException("--note: at most 200 characters")
    with _admin(ctx) as conn:
        account = accounts.require(conn, system_id)
        balance = credit.top_up(conn, account.id, milli, time.time(), note)
    billing = "prepaid" if account.prepaid else "postpaid"
    click.echo(
        f"added {credit.show(milli)} to {system_id}: balance {credit.show(balance)} ({billing})"
    )


@credit_group.command("show")
@click.argument("system_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_context
def credit_show(ctx: Context, system_id: str, as_json: bool) -> None:
    """Show an account's billing, balance, low-balance threshold (and whether the balance is
    below it), refund policy, and the sum of its ledger, which must equal the balance: when it
    does not, says so on stderr and exits 1.

    \b
    Example:
      smsc account credit show acme --json
    """
    with _reading(ctx) as conn:
        account = accounts.require(conn, system_id)
        total = credit.ledger_sum(conn, account.id)
    balance, low = account.balance, account.low_balance
    row = {
        "system_id": system_id,
        "billing": "prepaid" if account.prepaid else "postpaid",
        "balance": credit.show(balance),
        "balance_milli": balance,
        "low_balance": credit.show(low),
        "low_balance_milli": low,
        "below_low_balance": account.prepaid and balance < low,
        "refund_cancelled": True,
        "refund_expired": account.refund_expired,
        "refund_rejected": account.refund_rejected,
        "ledger_sum": credit.show(total),
        "ledger_sum_milli": total,
        "consistent": total == balance,
    }
    if not as_json:
        for key in ("balance_milli", "low_balance_milli", "ledger_sum_milli", "consistent"):
            del row[key]
        if not low:
            row["low_balance"] = "- (no alert)"
        elif not account.prepaid:
            row["low_balance"] += " (postpaid: no alert)"
        row["refund_cancelled"] = "True (always)"
        row["ledger_sum"] += " (= balance)" if total == balance else " (NOT the balance)"
    _output_one(row, as_json)
    if total != balance:
        raise click.ClickException(
            f"INCONSISTENT: the balance of {system_id} ({credit.show(balance)}) is not the sum "
            f"of its ledger ({credit.show(total)}); this must never happen: report it"
        )


@credit_group.command("history")
@click.argument("system_id")
@click.option("--since", metavar="DATE", help="From this date or time (included).")
@click.option("--until", metavar="DATE", help="Up to this date or time (excluded).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def credit_history(
    ctx: Context, system_id: str, since: str | None, until: str | None, as_json: bool
) -> None:
    """List the movements of an account's credit, oldest first: top-ups, charges (a message
    accepted), refunds and adjustments (replace_sm), with the message's id.

    DATE is a day (2026-01-31, from its midnight UTC) or an ISO datetime (2026-01-31T12:00:00,
    UTC unless it has an offset). In JSON, each amount is a string of credits ("-1.000") and
    in thousandths of a credit (amount_milli), to add up exactly.

    \b
    Example:
      smsc account credit history acme --since 2026-01-01 --until 2026-02-01
      smsc account credit history acme --since 2026-01-31T08:00:00+01:00 --json
    """
    start, end = _instant(since, "--since"), _instant(until, "--until")
    if start is not None and end is not None and end <= start:
        raise click.ClickException("--until must be after --since")
    with _reading(ctx) as conn:
        account = accounts.require(conn, system_id)
        rows = [
            {
                "id": r["id"],
                "at": _iso(r["at"]),
                "kind": r["kind"],
                "amount": credit.show(r["amount"]),
                "amount_milli": r["amount"],
                "message_id": None if r["message_id"] is None else str(r["message_id"]),
                "note": r["note"],
            }
            for r in credit.history(conn, account.id, start, end)
        ]
    if not as_json:
        for row in rows:
            row.update({k: row[k] or "-" for k in ("message_id", "note")})
    _output(rows, as_json, HISTORY_COLUMNS)


@main.group("tariff")
def tariff_group() -> None:
    """The price of a message part, by destination prefix (E.164 digits): the longest
    matching prefix, else the default price (1 credit a part unless set).

    \b
    Example:
      smsc tariff set default 0.8
      smsc tariff set 33 0.045
      smsc tariff list
    """


def _tariff_prefix(prefix: str) -> str:
    """PREFIX as the tariff keeps it: E.164 digits, or '' for `default`."""
    from .store.routing import RoutingError, prefix_digits

    if prefix == "default":
        return ""
    try:
        return prefix_digits(prefix)
    except RoutingError as e:
        raise click.ClickException(f"{e} (or the word default)") from None


def _tariff_name(prefix: str) -> str:
    return f"prefix {prefix}" if prefix else "the default"


@tariff_group.command("set", context_settings=_NUMBER_ARGUMENTS)
@click.argument("prefix")
@click.argument("price")
@pass_context
def tariff_set(ctx: Context, prefix: str, price: str) -> None:
    """Set the price of a part to numbers starting with PREFIX (E.164 digits), or the default
    price (PREFIX `default`): PRICE credits, up to 3 decimals, 0 for free. Applies to messages
    accepted from now on.

    \b
    Example:
      smsc tariff set 3366 0.05
      smsc tariff set default 1.2
    """
    key = _tariff_prefix(prefix)
    milli = _credits(price, "price")
    with db.writing(ctx.engine()) as conn:
        before = dict(credit.prices(conn)).get(key)
        credit.set_price(conn, key, milli)
    was = "" if before is None else f" (was {credit.show(before)})"
    click.echo(f"price of {_tariff_name(key)}: {credit.show(milli)} a part{was}")


@tariff_group.command("remove")
@click.argument("prefix")
@pass_context
def tariff_remove(ctx: Context, prefix: str) -> None:
    """Remove the price of PREFIX (its numbers then cost what a shorter prefix or the default
    says), or the default price set (`default`: back to the built-in 1 credit a part).

    \b
    Example:
      smsc tariff remove 3366
    """
    key = _tariff_prefix(prefix)
    with db.writing(ctx.engine()) as conn:
        removed = credit.remove_price(conn, key)
    if not removed:
        raise click.ClickException(f"no price set for {_tariff_name(key)}")
    builtin = f": back to the built-in {credit.show(credit.MILLI)}" if not key else ""
    click.echo(f"price of {_tariff_name(key)} removed{builtin}")


@tariff_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def tariff_list(ctx: Context, as_json: bool) -> None:
    """List the prices of a part: the default first (source `built-in` when none was set),
    then by prefix. In JSON, prices are strings of credits and in thousandths (price_milli).

    \b
    Example:
      smsc tariff list --json
    """
    with ctx.engine().connect() as conn:
        prices = credit.prices(conn)
    if not any(prefix == "" for prefix, _ in prices):
        prices = [("", None), *prices]
    rows = [
        {
            "prefix": prefix or "default",
            "price": credit.show(credit.MILLI if price is None else price),
            "price_milli": credit.MILLI if price is None else price,
            "source": "built-in" if price is None else "tariff",
        }
        for prefix, price in sorted(prices, key=lambda p: (p[0] != "", p[0]))
    ]
    _output(rows, as_json, TARIFF_COLUMNS)


# -- the opt-out list ----------------------------------------------------------------------

OPTOUT_BATCH = 1000  # `blacklist import` commits every this many numbers
OPTOUT_REPORTED = 20  # bad lines named (by line number) one by one; beyond, only counted
OPTOUT_COLUMNS = ["hash", "list", "origin", "created_at"]
_SEPARATORS = str.maketrans("", "", " .-\u00a0")  # 06 12 34 56 78, 06.12.34.56.78


@main.group("blacklist")
def blacklist_group() -> None:
    """The opt-out list: numbers that asked not to get messages.

    A number is on the global list (refused for every account) or on an account's list (a
    subscriber's STOP to that account). Numbers are kept only as keyed hashes (HMAC-SHA256
    under [optout] hash_key, or a key generated once and kept in the store): the list answers
    whether a number is on it, and cannot be read back as numbers without the key. Entries
    are forgotten [optout] retention_days after they were last put there.

    \b
    Example:
      smsc blacklist add +33612345678
      smsc blacklist check 0612345678
    """


def _phone_number(text: str) -> str:
    digits = addresses.e164(text.translate(_SEPARATORS))
    if digits is None:
        raise click.ClickException(f"{text!r} is not a phone number")
    return digits


def _scope(conn, system_id: str | None) -> tuple[int, str]:
    """The list --account names (the global list without it), and how to call it."""
    if system_id is None:
        return optouts.GLOBAL, "the global list"
    return accounts.require(conn, system_id).id, f"the list of {system_id}"


def _list_names(conn) -> dict[int, str]:
    names = {a.id: a.system_id for a in accounts.all_accounts(conn)}
    names[optouts.GLOBAL] = "global"
    return names


def _list_name(names: dict[int, str], scope: int) -> str:
    return names.get(scope, f"#{scope} (no such account)")


def _hash_key(ctx: Context, conn) -> bytes:
    return optouts.hash_key(conn, ctx.config.optout.hash_key)


@contextmanager
def _reading(ctx: Context):
    """A reading connection whose AccountError becomes a one-line CLI error."""
    try:
        with ctx.engine().connect() as conn:
            yield conn
    except AccountError as e:
        raise click.ClickException(str(e)) from None


@blacklist_group.command("add")
@click.argument("number")
@click.option(
    "--account",
    "system_id",
    metavar="SYSTEM_ID",
    help="On this account's list  [default: the global list]",
)
@pass_context
def blacklist_add(ctx: Context, number: str, system_id: str | None) -> None:
    """Put a number on the global list, or on an account's list. A number that is there
    already stays, and its retention starts again from now.

    NUMBER may be written +33612345678, 0033612345678, 0612345678 or 33612345678.

    \b
    Example:
      smsc blacklist add +33612345678
      smsc blacklist add 0612345678 --account shop
    """
    digits = _phone_number(number)
    with _admin(ctx) as conn:
        scope, name = _scope(conn, system_id)
        key = _hash_key(ctx, conn)
        new = optouts.add(conn, scope, [optouts.digest(key, digits)], "admin", time.time())
    click.echo(f"{digits} added to {name}" if new else f"{digits} was on {name}: kept from now")


@blacklist_group.command("remove")
@click.argument("number")
@click.option(
    "--account",
    "system_id",
    metavar="SYSTEM_ID",
    help="From this account's list  [default: the global list]",
)
@pass_context
def blacklist_remove(ctx: Context, number: str, system_id: str | None) -> None:
    """Take a number off the global list, or off an account's list: it may get messages again.

    For a number put there by mistake, or at its owner's request.

    \b
    Example:
      smsc blacklist remove +33612345678
      smsc blacklist remove 0612345678 --account shop
    """
    digits = _phone_number(number)
    with _admin(ctx) as conn:
        scope, name = _scope(conn, system_id)
        number_hash = optouts.digest(_hash_key(ctx, conn), digits)
        removed = optouts.remove(conn, scope, number_hash)
        names = _list_names(conn)
        others = [_list_name(names, s) for s in optouts.scopes_of(conn, number_hash)]
    if not removed:
        on = f" (it is on: {', '.join(others)})" if others else ""
        raise click.ClickException(f"{digits} is not on {name}{on}")
    click.echo(f"{digits} removed from {name}")
    if others:
        click.echo(f"{digits} is still on: {', '.join(others)}")


@blacklist_group.command("check")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help='{"number": …, "lists": […]}')
@pass_context
def blacklist_check(ctx: Context, number: str, as_json: bool) -> None:
    """Show which lists a number is on: `global` and the accounts' names (none: it may get
    messages). Exits 0 either way.

    \b
    Example:
      smsc blacklist check 0612345678 --json
    """
    digits = _phone_number(number)
    with _admin(ctx) as conn:  # writing: the first use of the store's key makes it
        scopes = optouts.scopes_of(conn, optouts.digest(_hash_key(ctx, conn), digits))
        names = _list_names(conn)
    row = {"number": digits, "lists": [_list_name(names, s) for s in scopes]}
    if not as_json:
        row["lists"] = " ".join(row["lists"]) or "- (on no list)"
    _output_one(row, as_json)


@blacklist_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--account",
    "system_id",
    metavar="SYSTEM_ID",
    help="On this account's list  [default: the global list]",
)
@pass_context
def blacklist_import(ctx: Context, file: str, system_id: str | None) -> None:
    """Put the numbers of a CSV file on the global list, or on an account's list.

    One number a line, in the first column (comma or semicolon separated; other columns are
    ignored); a header line is optional. Numbers are written as for `blacklist add`. Bad lines
    are reported by their line number only (numbers are not printed) and skipped. Numbers are
    committed 1,000 at a time: an interrupted import keeps what it committed, and running it
    again is harmless. Exits non-zero when the file has lines but none holds a number.

    \b
    Example:
      smsc blacklist import stop-2025.csv --account shop
    """
    import csv
    import os

    with _admin(ctx) as conn:
        scope, name = _scope(conn, system_id)
        key = _hash_key(ctx, conn)
    try:
        f = open(file, "rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as e:
        raise click.ClickException(f"{file}: {e.strerror}") from None
    read = shown = imported = new = 0
    bad: list[int] = []  # line numbers

    def text():
        nonlocal read
        for raw in f:
            read += len(raw)  # utf-8-sig: without the BOM some spreadsheets write first
            yield raw.decode("utf-8-sig" if read == len(raw) else "utf-8", errors="replace")

    with (
        f,
        ctx.engine().connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
        _progress(os.fstat(f.fileno()).st_size, f"importing {file}") as bar,
    ):

        def commit(hashes: list[bytes]) -> None:
            nonlocal imported, new, shown
            with conn.begin():
                new += optouts.add(conn, scope, hashes, "import", time.time())
            imported += len(hashes)
            bar.update(read - shown)
            shown = read

        batch: list[bytes] = []
        reader = csv.reader(text())
        for cells in reader:
            first = cells[0].split(";", 1)[0].strip() if cells else ""
            if not "".join(cells).strip():
                continue  # a blank line
            if reader.line_num == 1 and not any(ch.isdigit() for ch in first):
                continue  # a header
            digits = addresses.e164(first.translate(_SEPARATORS))
            if digits is None:
                bad.append(reader.line_num)
                continue
            batch.append(optouts.digest(key, digits))
            if len(batch) >= OPTOUT_BATCH:
                commit(batch)
                batch = []
        commit(batch)
    if bad:
        listed = ", ".join(map(str, bad[:OPTOUT_REPORTED]))
        more = f" and {len(bad) - OPTOUT_REPORTED} more" if len(bad) > OPTOUT_REPORTED else ""
        plural = "s" * (len(bad) > 1)
        click.echo(f"not a phone number (skipped): line{plural} {listed}{more}", err=True)
        if not imported:
            raise click.ClickException(
                f"no numbers imported from {file}: {len(bad)} bad line{plural}"
            )
    summary = f"imported {imported} numbers to {name} ({new} new)"
    click.echo(summary + (f", skipped {len(bad)} bad line{plural}" if bad else ""))


@blacklist_group.command("export")
@click.option(
    "--account",
    "system_id",
    metavar="SYSTEM_ID",
    help="Only this account's list  [default: every list]",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def blacklist_export(ctx: Context, system_id: str | None, as_json: bool) -> None:
    """List the entries, oldest first: the number's hash (hex), its list (`global` or an
    account), its origin (stop: a subscriber's STOP; admin: `blacklist add`; import:
    `blacklist import`) and when it was last put there. Numbers are not kept, so never shown.

    \b
    Example:
      smsc blacklist export --account shop --json
    """
    with _reading(ctx) as conn:
        scope = None if system_id is None else _scope(conn, system_id)[0]
        names = _list_names(conn)
        rows = [
            {"hash": h.hex(), "list": _list_name(names, s), "origin": o, "created_at": _iso(t)}
            for h, s, o, t in optouts.export(conn, scope)
        ]
    _output(rows, as_json, OPTOUT_COLUMNS)


@blacklist_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def blacklist_stats(ctx: Context, as_json: bool) -> None:
    """Count the entries of each list, with the oldest and newest entry's time (an entry is
    forgotten [optout] retention_days after its time).

    \b
    Example:
      smsc blacklist stats --json
    """
    with _reading(ctx) as conn:
        names = _list_names(conn)
        rows = [
            {"list": _list_name(names, s), "entries": n, "oldest": _iso(a), "newest": _iso(b)}
            for s, n, a, b in optouts.stats(conn)
        ]
    _output(rows, as_json, ["list", "entries", "oldest", "newest"])


# -- routes, number portability, carriers --------------------------------------------------

MNP_COMMIT_ROWS = 10_000  # `mnp import` commits every this many rows
MNP_REPORTED = 20  # skipped lines named one by one; beyond, only counted
CARRIER_COLUMNS = [
    "name", "address", "binds", "bound", "state", "window_in_use", "tps", "priority", "prefixes",
]  # fmt: skip


@contextmanager
def _routing_admin(ctx: Context):
    """A writing transaction whose RoutingError becomes a one-line CLI error."""
    from .store.routing import RoutingError

    try:
        with db.writing(ctx.engine()) as conn:
            yield conn
    except RoutingError as e:
        raise click.ClickException(str(e)) from None


def _carrier_named(ctx: Context, name: str) -> configuration.CarrierConfig:
    for carrier in ctx.config.carriers:
        if carrier.name == name:
            return carrier
    configured = ", ".join(c.name for c in ctx.config.carriers) or "none"
    raise click.ClickException(f"no carrier {name} in the config (configured: {configured})")


@main.group("route")
def route_group() -> None:
    """Routes: which carriers take which E.164 prefixes.

    A number goes first to the carrier it was ported to (`smsc mnp`), then to the carriers of
    its longest matching prefix by priority (lowest first), then of shorter prefixes, then to
    the config's default route. Prefixes come from the carriers' `prefixes` in the config and
    from the routes added here.

    \b
    Example:
      smsc route add 3375 sfr --priority 0
      smsc route list
    """


@route_group.command("add")
@click.argument("prefix")
@click.argument("carrier")
@click.option(
    "--priority",
    type=int,
    help="Lowest is tried first among the carriers of a prefix  [default: the carrier's own]",
)
@pass_context
def route_add(ctx: Context, prefix: str, carrier: str, priority: int | None) -> None:
    """Add a route: numbers starting with PREFIX (E.164 digits) may go to CARRIER.

    CARRIER must be a carrier of the config. Adding a route that exists changes its priority.

    \b
    Example:
      smsc route add 3375 sfr --priority 0
    """
    from .store import routing as routing_store

    configured = _carrier_named(ctx, carrier)
    if priority is None:
        priority = configured.priority
    with _routing_admin(ctx) as conn:
        before = routing_store.add_route(conn, prefix, carrier, priority)
    prefix = routing_store.prefix_digits(prefix)
    if before is None:
        click.echo(f"route {prefix} {carrier} added (priority {priority})")
    else:
        click.echo(f"route {prefix} {carrier} changed: priority {priority} (was {before})")


@route_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def route_list(ctx: Context, as_json: bool) -> None:
    """List the routes, from the config and from `smsc route add`.

    Source `config`: the carriers' configured prefixes, at the carrier's priority. Source
    `admin`: the routes added with `smsc route add`. Source `default`: the default route for
    numbers no prefix matches, listed with prefix * and its place in the list as priority.

    \b
    Example:
      smsc route list --json
    """
    from .store import routing as routing_store

    config = ctx.config
    order = {c.name: i for i, c in enumerate(config.carriers)}
    with ctx.engine().connect() as conn:
        admin = routing_store.all_routes(conn)
    rows = [
        {"prefix": p, "carrier": c.name, "priority": c.priority, "source": "config"}
        for c in config.carriers
        for p in c.prefixes
    ]
    rows += [{"prefix": p, "carrier": c, "priority": n, "source": "admin"} for p, c, n in admin]
    rows.sort(key=lambda r: (r["prefix"], r["priority"], order.get(r["carrier"], len(order))))
    rows += [
        {"prefix": "*", "carrier": name, "priority": i, "source": "default"}
        for i, name in enumerate(config.routing.default, 1)
    ]
    _output(rows, as_json, ["prefix", "carrier", "priority", "source"])
    for prefix, carrier, _ in admin:
        if carrier not in order:
            click.echo(
                f"warning: route {prefix} {carrier}: no carrier {carrier} in the config, ignored",
                err=True,
            )


@route_group.command("remove")
@click.argument("prefix")
@click.argument("carrier")
@pass_context
def route_remove(ctx: Context, prefix: str, carrier: str) -> None:
    """Remove a route added with `smsc route add`.

    Configured prefixes are changed in the config, not here.

    \b
    Example:
      smsc route remove 3375 sfr
    """
    from .store import routing as routing_store

    with _routing_admin(ctx) as conn:
        removed = routing_store.remove_route(conn, prefix, carrier)
    prefix = routing_store.prefix_digits(prefix)
    if removed:
        click.echo(f"route {prefix} {carrier} removed")
        return
    if any(c.name == carrier and prefix in c.prefixes for c in ctx.config.carriers):
        raise click.ClickException(
            f"route {prefix} {carrier} comes from the config (the carrier's prefixes): "
            "change it there"
        )
    raise click.ClickException(f"no route {prefix} {carrier}")


@main.group("mnp")
def mnp_group() -> None:
    """Number portability: the carrier that really serves a number, tried before any prefix.

    \b
    Example:
      smsc mnp import ported.csv
      smsc mnp show +33612345678
    """


@mnp_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_context
def mnp_import(ctx: Context, file: str) -> None:
    """Load ported numbers from a CSV file of `number,carrier` lines.

    A header line is optional; a number already in the table gets the new carrier. Numbers may
    be written in any form a client may submit (+33612345678, 0612345678, 0033612345678);
    carriers must be configured. Bad lines are reported with their line number and skipped.
    Rows are committed every 10,000 lines: an interrupted import keeps what it committed, and
    running it again is harmless. Exits non-zero when the file has lines but none could be
    imported.

    \b
    Example:
      smsc mnp import ported.csv
    """
    import csv
    import os

    from .addresses import e164
    from .store import routing as routing_store

    names = {c.name for c in ctx.config.carriers}
    engine = ctx.engine()
    try:
        f = open(file, "rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as e:
        raise click.ClickException(f"{file}: {e.strerror}") from None
    read = 0  # bytes read so far, for the progress bar

    def lines():
        nonlocal read
        for raw in f:
            first = not read
            read += len(raw)
            if first:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # the BOM some spreadsheets write
            yield raw.decode("utf-8", errors="replace")

    imported, skipped, reports = 0, 0, []

    def skip(line: int, why: str) -> None:
        nonlocal skipped
        skipped += 1
        if skipped <= MNP_REPORTED:
            reports.append(f"line {line}: {why} (skipped)")

    def commit(conn, rows) -> int:
        with conn.begin():
            return routing_store.import_mnp(conn, rows)

    with (
        f,
        engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn,
        _progress(os.fstat(f.fileno()).st_size, f"importing {file}") as bar,
    ):
        chunk: list[tuple[str, str]] = []
        reader = csv.reader(lines())
        shown = 0
        for cells in reader:
            line = reader.line_num
            if not "".join(cells).strip():
                continue  # a blank line
            if len(cells) != 2:
                skip(line, "expected number,carrier")
                continue
            number, carrier = cells[0].strip(), cells[1].strip()
            if line == 1 and not any(ch.isdigit() for ch in number):
                continue  # a header
            digits = e164(number)
            if digits is None:
                skip(line, f"{number!r} is not a phone number")
            elif carrier not in names:
                skip(line, f"no carrier {carrier!r} in the config")
            else:
                chunk.append((digits, carrier))
                if len(chunk) >= MNP_COMMIT_ROWS:
                    imported += commit(conn, chunk)
                    chunk = []
                    bar.update(read - shown)
                    shown = read
        if chunk:
            imported += commit(conn, chunk)
        bar.update(read - shown)
        total = routing_store.mnp_count(conn)
    for report in reports:
        click.echo(report, err=True)
    if skipped > len(reports):
        click.echo(f"and {skipped - len(reports)} more lines skipped", err=True)
    if skipped and not imported:
        raise click.ClickException(f"no numbers imported from {file}: {skipped} lines skipped")
    summary = f"imported {imported} numbers"
    if skipped:
        summary += f", skipped {skipped} lines"
    click.echo(f"{summary}; the table holds {total}")


@mnp_group.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_context
def mnp_show(ctx: Context, number: str, as_json: bool) -> None:
    """Show a number's ported carrier, if any, and its route.

    The route is the carriers it would be tried on, in order.

    \b
    Example:
      smsc mnp show +33612345678
    """
    from .addresses import e164
    from .routing.router import Router
    from .store import routing as routing_store

    digits = e164(number)
    if digits is None:
        raise click.ClickException(f"{number!r} is not a phone number")
    with ctx.engine().connect() as conn:
        carrier = routing_store.ported(conn, [digits]).get(digits)
        router = Router.from_config(ctx.config, routing_store.all_routes(conn))
    row = {"number": digits, "ported_to": carrier, "route": router.candidates(digits, carrier)}
    if not as_json:
        if carrier is None:
            row["ported_to"] = "- (not ported)"
        elif carrier not in router.carriers:
            row["ported_to"] = f"{carrier} (not a configured carrier)"
        row["route"] = " ".join(row["route"]) or "- (no route)"
    _output_one(row, as_json)


@main.group("carrier")
def carrier_group() -> None:
    """The carriers the switch sends to (the config's [[carriers]]).

    \b
    Example:
      smsc carrier list
    """


@carrier_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def carrier_list(ctx: Context, as_json: bool) -> None:
    """List the configured carriers with the live state of their links in the running
    server (asked at GET /status on its [metrics] host and port): binds bound of those
    configured, state (bound 2/2, connecting, reconnecting, throttled, down) and messages in
    flight (window in use). Without an answer the state is unknown: said once on stderr,
    exit 0.

    \b
    Example:
      smsc carrier list
      smsc carrier list --json
    """
    config = ctx.config
    status, why = _server_status(config)
    if why:
        click.echo(f"warning: live state unknown: {why}", err=True)
    live = {c.get("name"): c for c in (status or {}).get("carriers", []) if isinstance(c, dict)}
    rows = [
        {
            "name": c.name,
            "address": f"[{c.host}]:{c.port}" if ":" in c.host else f"{c.host}:{c.port}",
            "binds": c.binds,
            **_live_state(c, live.get(c.name), status is not None),
            "window": c.window,
            "tps": c.tps,
            "priority": c.priority,
            "prefixes": list(c.prefixes),
            "simulate": c.simulate,
        }
        for c in config.carriers
    ]
    if not as_json:
        for row in rows:
            row["prefixes"] = " ".join(row["prefixes"]) or "-"
            in_use, capacity = row["window_in_use"], row["window"] * row["binds"]
            row["window_in_use"] = f"{'-' if in_use is None else in_use}/{capacity}"
            row["bound"] = "-" if row["bound"] is None else row["bound"]
    _output(rows, as_json, CARRIER_COLUMNS)


STATUS_TIMEOUT = 2.0  # seconds `carrier list` waits for the running server's /status


def _server_status(config) -> tuple[dict | None, str]:
    """The running server's GET /status, or None and why not."""
    import urllib.error
    import urllib.request

    metrics = getattr(config, "metrics", None)
    host, port = getattr(metrics, "host", None), getattr(metrics, "port", None)
    if not host or not port:
        return None, "no [metrics] section in the config (the server's /status is there)"
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with urllib.request.urlopen(f"http://{where}/status", timeout=STATUS_TIMEOUT) as answer:
            status = json.loads(answer.read())
    except (OSError, ValueError) as e:  # refused, timed out, an HTTP error, not JSON
        reason = getattr(e, "reason", None) or e
        return None, f"server not reachable at {where} ({reason})"
    if not isinstance(status, dict):
        return None, f"server at {where}: /status is not a JSON object"
    return status, ""


def _live_state(carrier: configuration.CarrierConfig, live: dict | None, answered: bool) -> dict:
    """A carrier's columns from the server's /status: bound, state, window_in_use."""
    if live is None:
        state = "not running" if answered else "unknown"
        return {"bound": None, "state": state, "window_in_use": None}
    links = [link for link in live.get("links", []) if isinstance(link, dict)]
    states = [link.get("state") for link in links]
    bound = live.get("bound", states.count("bound"))
    binds = live.get("binds", carrier.binds)
    if live.get("throttled") or "throttled" in states:
        state = "throttled"
    elif bound:
        state = f"bound {bound}/{binds}"
    else:  # the most hopeful of the links' states
        state = next((s for s in ("reconnecting", "connecting") if s in states), "down")
    in_use = sum(int(link.get("window_in_use") or 0) for link in links)
    return {"bound": bound, "state": state, "window_in_use": in_use}


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _terminal() -> bool:
    return sys.stderr.isatty()


def _progress(length: int, label: str):
    """A progress bar on stderr when it is a terminal (none in scripts and pipes)."""
    if not _terminal():
        return _NoProgress()
    return click.progressbar(length=length, label=label, file=sys.stderr)


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
@click.option("--json", "as_json", is_flag=True, help="One JSON object: times as epoch and ISO.")
@click.option("--text", "with_text", is_flag=True, help="Also show the message's text.")
@pass_context
def message_show(ctx: Context, message_id: str, as_json: bool, with_text: bool) -> None:
    """Show the life of a message, by the id its client got: accepted, scheduled for, valid
    until, its state and error, the carrier it went to and each part there (the carrier's
    id, state, when sent), the receipt, and the receipts forwarded to the client.

    Times are in UTC and in the account's time zone. The text is shown only with --text.

    \b
    Example:
      smsc message show 42
      smsc message show 42 --json --text
    """
    from .store import outbox, retention

    with ctx.engine().connect() as conn:
        message = messages.get(conn, _message_id(message_id))
        if message is None:
            raise click.ClickException(f"no message {message_id}")
        owner = accounts.by_id(conn, message.account_id)
        parts = messages.parts_of(conn, message.id)
        forwarded = outbox.of_message(conn, message.account_id, message.id)
    zone = _zone(owner.timezone)
    final = message.state in messages.FINAL
    purged = retention.is_purged(message)
    row = {
        "id": str(message.id),
        "account": owner.system_id,
        "origin": "switch" if message.origin == messages.ORIGIN_SWITCH else "client",
        "source": message.source,
        "destination": message.destination,
        "service_type": message.service_type,
        "data_coding": message.data_coding,
        "length": len(message.body),
        "registered_delivery": message.registered_delivery,
        "timezone": zone.key,
        "submitted_at": message.submitted_at,
        "due_at": message.due_at if message.due_at > message.submitted_at else None,
        "expires_at": message.expires_at,
        "state": message.state,
        "error": None if message.error is None else f"0x{message.error:08x}",
        "carrier": message.carrier,
        "attempts": message.attempts,
        "updated_at": message.updated_at,
        "final_at": message.updated_at if final else None,
        "parts": [{k: p[k] for k in PART_KEYS} for p in parts],
        "client_receipts": forwarded,
        "purged": purged,
    }
    if message.multi_id is not None:
        row["multi_id"] = str(message.multi_id)
    if with_text:
        row["text"] = None if purged else _message_text(message)
    if as_json:
        click.echo(json.dumps(_times_as_data(row, zone), indent=2))
        return
    _show_message(row, zone)


PART_KEYS = ("seq", "carrier", "carrier_id", "state", "sent_at", "updated_at")
_TIME_KEYS = {"submitted_at", "due_at", "expires_at", "updated_at", "final_at", "sent_at",
              "created_at"}  # fmt: skip


def _zone(name: str):
    """The account's time zone; Europe/Paris when it has none the system knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name or "Europe/Paris")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/Paris")


def _times_as_data(value, zone):
    """A message show row with its times as {epoch, utc, local}, lists and dicts walked."""
    if isinstance(value, list):
        return [_times_as_data(v, zone) for v in value]
    out = {}
    for key, v in value.items():
        if isinstance(v, list):
            v = _times_as_data(v, zone)
        elif key in _TIME_KEYS and v is not None:
            local = datetime.fromtimestamp(v, zone).isoformat(timespec="seconds")
            v = {"epoch": v, "utc": _iso(v), "local": local}
        out[key] = v
    return out


def _when(epoch: float | None, zone) -> str:
    """2026-11-29 10:00:00 UTC (11:00:00 Europe/Paris); the local date too when it differs."""
    if epoch is None:
        return "-"
    utc = datetime.fromtimestamp(epoch, UTC)
    local = utc.astimezone(zone)
    shown = "%H:%M:%S" if local.date() == utc.date() else "%Y-%m-%d %H:%M:%S"
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC ({local.strftime(shown)} {zone.key})"


def _message_text(message: messages.Message) -> str:
    """The text as its client sent it (without a UDH); binary data in hex."""
    from .protocol.constants import ESM_UDHI
    from .protocol.text import decode

    body = message.body
    if message.esm_class & ESM_UDHI and body:
        body = body[1 + body[0] :]
    text = decode(message.data_coding, body)
    return body.hex() if text is None else text


def _show_message(row: dict, zone) -> None:
    parts, forwarded = row["parts"], row["client_receipts"]
    if row["final_at"] is not None:
        receipt = f"{row['state']} at {_when(row['final_at'], zone)}"
    else:
        receipt = f"- (none yet; {row['state']} since {_when(row['updated_at'], zone)})"
    head = ("id", "multi_id", "account", "origin", "source", "destination", "service_type")
    shown = {k: row[k] for k in head if k in row}
    shown.update(
        {
            "data_coding": row["data_coding"],
            "length": row["length"],
            "registered_delivery": row["registered_delivery"],
            "accepted": _when(row["submitted_at"], zone),
            "scheduled_for": _when(row["due_at"], zone) if row["due_at"] else "- (at once)",
            "valid_until": _when(row["expires_at"], zone),
            "state": row["state"],
            "error": row["error"] or "-",
            "carrier": row["carrier"] or "- (not sent)",
            "attempts": row["attempts"],
            "receipt": receipt,
        }
    )
    if row["purged"]:  # its text and numbers are gone (smsc db purge)
        shown["destination"] = "- (purged)"
        shown["source"] = row["source"] or "- (purged)"
        shown["length"] = "- (purged)"
    if "text" in row:
        shown["text"] = "- (purged)" if row["purged"] else row["text"]
    _output_one(shown, False)
    click.echo("\nparts at the carrier:")
    if parts:
        rows = [
            {**p, "sent_at": _when(p["sent_at"], zone), "updated_at": _when(p["updated_at"], zone)}
            for p in parts
        ]
        _output(rows, False, list(PART_KEYS))
    else:
        click.echo("- (none: not sent)")
    click.echo("\nreceipts forwarded to the client:")
    if forwarded:
        rows = [{**r, "created_at": _when(r["created_at"], zone)} for r in forwarded]
        _output(rows, False, ["id", "created_at", "state", "attempts"])
    else:
        click.echo("- (none)")


@message_group.command("cancel")
@click.argument("message_id")
@pass_context
def message_cancel(ctx: Context, message_id: str) -> None:
    """Cancel a message that has not left for a carrier (all the destinations of a
    submit_multi, given its id).

    \b
    Example:
      smsc message cancel 42
    """
    with _admin(ctx) as conn:
        message = messages.get(conn, _message_id(message_id))
        if message is None:
            raise click.ClickException(f"no message {message_id}")
        n = messages.cancel(conn, message.account_id, time.time(), message_id=message.id)
    if not n:
        raise click.ClickException(f"message {message_id} is {message.state}: too late to cancel")
    click.echo(f"cancelled {n} message{'s' * (n > 1)}")


@main.group("queue")
def queue_group() -> None:
    """The message queue.

    \b
    Example:
      smsc queue stats
    """


@queue_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
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


@queue_group.command("cancel")
@click.option("--account", "system_id", required=True, help="The account whose messages to cancel.")
@click.option("--service-type", default="", help="Only the messages of this service_type.")
@pass_context
def queue_cancel(ctx: Context, system_id: str, service_type: str) -> None:
    """Cancel every message of an account that has not left for a carrier (scheduled ones
    included), in chunks, with a progress bar.

    \b
    Example:
      smsc queue cancel --account shop --service-type PROMO
    """
    engine = ctx.engine()
    with engine.connect() as conn:
        try:
            account = accounts.require(conn, system_id)
        except AccountError as e:
            raise click.ClickException(str(e)) from None
        ids = messages.waiting_ids(conn, account.id, service_type)
    cancelled = 0
    chunks = [ids[i : i + 5000] for i in range(0, len(ids), 5000)]
    with _progress(len(ids), f"cancelling {len(ids)} messages") as bar:
        for chunk in chunks:
            with db.writing(engine) as conn:
                cancelled += messages.cancel_ids(conn, chunk, time.time())
            bar.update(len(chunk))
    click.echo(f"cancelled {cancelled} messages of {system_id}")


# -- helpers -------------------------------------------------------------------------------


def _message_id(text: str) -> int:
    """A message id as the client got it: decimal digits, within what the store can hold."""
    if not (text.isascii() and text.isdigit()):
        raise click.ClickException(f"{text!r} is not a message id")
    if int(text) >= 2**63:
        raise click.ClickException(f"no message {text}")
    return int(text)


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


# -- lockouts ------------------------------------------------------------------------------

LOCKOUT_COLUMNS = ["kind", "target", "since", "until", "remaining", "failures"]


@main.group("lockout")
def lockout_group() -> None:
    """Bind lockouts: a system_id or a source address that failed too many binds is refused
    (ESME_RBINDFAIL, no password check) until its lockout ends or an admin lifts it. The
    thresholds and the lockout's length are in [limits] (README, "Abuse and limits").

    \b
    Example:
      smsc lockout list
      smsc lockout lift --account acme
      smsc lockout lift --address 203.0.113.7
    """


@lockout_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@pass_context
def lockout_list(ctx: Context, as_json: bool) -> None:
    """List the lockouts in force, on every node sharing the store: kind (account or address),
    target (a system_id, an IPv4 address, or the /64 of an IPv6 one), since, until, the
    seconds remaining and the failed binds that started it.

    \b
    Example:
      smsc lockout list --json
    """
    now = time.time()
    with ctx.engine().connect() as conn:
        found = lockouts.active(conn, now)
    rows = [
        {
            "kind": lo.kind,
            "target": lo.key,
            "since": _iso(lo.since),
            "until": _iso(lo.until),
            "remaining": round(lo.until - now),
            "failures": lo.failures,
        }
        for lo in found
    ]
    _output(rows, as_json, LOCKOUT_COLUMNS)


@lockout_group.command("lift")
@click.option("--account", "system_id", metavar="SYSTEM_ID", help="Lift a system_id's lockout.")
@click.option("--address", metavar="IP", help="Lift a source address's lockout.")
@pass_context
def lockout_lift(ctx: Context, system_id: str | None, address: str | None) -> None:
    """End a lockout now. A running server lets the account or address bind again within
    5 seconds (its failures start again from 0). An IPv6 address is locked out by its /64:
    give any address of it, or the /64.

    \b
    Example:
      smsc lockout lift --account acme
      smsc lockout lift --address 203.0.113.7
      smsc lockout lift --address 2001:db8:1:2::/64
    """
    if (system_id is None) == (address is None):
        raise click.UsageError("give --account SYSTEM_ID or --address IP (one of them)")
    if system_id is not None:
        kind, key = lockouts.ACCOUNT, system_id
    else:
        try:
            kind, key = lockouts.ADDRESS, limits.parse_address(address)
        except ValueError as e:
            raise click.ClickException(f"--address {e}") from None
    with _admin(ctx) as conn:
        lifted = lockouts.lift(conn, kind, key, time.time())
    if not lifted:
        raise click.ClickException(f"no lockout of {kind} {key} (smsc lockout list)")
    click.echo(f"lockout of {kind} {key} lifted")


# -- carrier simulator ---------------------------------------------------------------------


@main.command("carrier-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="SMPP listen address.")
@click.option("--port", type=int, default=2776, show_default=True, help="0: any free port.")
@click.option("--name", default="carrier", show_default=True, help="In logs and bind_resp.")
@click.option(
    "--id-format",
    type=click.Choice(["hex", "dec"]),
    default="hex",
    show_default=True,
    help="Ids in submit_sm_resp (10 digits, zero-padded; hex in upper case).",
)
@click.option(
    "--receipt-id-format",
    type=click.Choice(["hex", "dec"]),
    help="Ids in receipts (unpadded; hex in lower case)  [default: as --id-format]",
)
@click.option("--no-receipt-tlvs", is_flag=True, help="Receipts carry their state in text only.")
@click.option("--dlr-delay", type=float, default=1.0, show_default=True, help="Seconds.")
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option(
    "--lose-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of the receipts asked for that it never sends.",
)
@click.option("--tps", type=int, default=0, show_default=True, help="Submits/s; 0: no cap.")
@click.option("--control-port", type=int, help="HTTP control on 127.0.0.1; 0: any free port.")
@click.option("--seed", type=int, help="Seed of the fail-rate and lose-rate draws.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False),
    help="Append one JSON line per submit answered to this file (flushed at once).",
)
@click.option(
    "--refuse-prefix",
    multiple=True,
    help="Refuse destinations with this prefix for good (ESME_RINVDSTADR); repeatable.",
)
@click.option(
    "--resp-delay",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds before each submit_sm_resp.",
)
def carrier_sim(**o) -> None:
    """Run a simulated national carrier SMSC: receipts after --dlr-delay, UNDELIV for a
    --fail-rate share, no receipt at all for a --lose-rate share, ESME_RTHROTTLED above --tps.
    No config file needed.

    \b
    Example:
      smsc carrier-sim --port 2776 --name orange --id-format dec --control-port 8776
    """
    from twisted.internet.error import CannotListenError

    from . import simulator

    sim = configuration.SimulatorConfig(
        id_format=o["id_format"],
        dlr_delay=o["dlr_delay"],
        fail_rate=o["fail_rate"],
        lose_rate=o["lose_rate"],
        tps=o["tps"],
    )
    try:
        simulator.run(
            o["name"],
            o["host"],
            o["port"],
            sim,
            o["control_port"],
            receipt_id_format=o["receipt_id_format"],
            receipt_tlvs=not o["no_receipt_tlvs"],
            seed=o["seed"],
            record=o["record"],
            refuse=o["refuse_prefix"],
            resp_delay=o["resp_delay"],
        )
    except CannotListenError as e:
        message = f"cannot listen on {e.interface}:{e.port}: {e.socketError}"
        raise click.ClickException(message) from None


# -- bench ---------------------------------------------------------------------------------


@main.command()
@click.option(
    "--mode",
    type=click.Choice(["submit", "accept", "e2e", "schedule", "soak"]),
    default="submit",
    show_default=True,
    help="submit: accepted submit_sm/s; accept: the accept path alone, in-process (no socket, "
    "codec or session); e2e: clients → switch → carriers → receipts back; "
    "schedule: a queue of scheduled messages, and how it drains once due; soak: a steady e2e "
    "load for --duration seconds, the switch's RSS sampled.",
)
@click.option("--binds", type=int, default=8, show_default=True, help="Client binds.")
@click.option("--window", type=int, default=10, show_default=True, help="Outstanding per bind.")
@click.option("--messages", type=int, help="Measured, in all  [default: 100000; schedule: 1000000]")
@click.option("--warmup", type=int, help="Sent first, unmeasured  [default: messages/10, ≤ 5000]")
@click.option("--target", metavar="HOST:PORT", help="Bench a running switch instead.")
@click.option("--system-id", default="bench", show_default=True, help="With --target.")
@click.option("--password", default="bench", show_default=True, help="With --target.")
@click.option("--pid", type=int, help="With --target: its pid, for its peak RSS.")
@click.option(
    "--store-url",
    help="The switch's store; on PostgreSQL, the run gets a schema of its own, dropped "
    "afterwards  [default: a temporary SQLite file]",
)
@click.option(
    "--nodes",
    type=int,
    default=1,
    show_default=True,
    help="submit, e2e: `smsc serve` nodes sharing the --store-url (PostgreSQL); the binds go "
    "round robin over them.",
)
@click.option("--ceiling/--no-ceiling", default=True, help="Also measure the echo server.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Stall limit, s.")
@click.option("--carriers", type=int, default=3, show_default=True, help="e2e: carriers.")
@click.option(
    "--simulators",
    type=click.Choice(["in", "out"]),
    help="e2e: in the switch's process (simulate = true), or carrier-sim processes that all "
    "the nodes share  [default: in; out with --nodes > 1]",
)
@click.option(
    "--carrier-binds", type=int, help="e2e: per carrier, all nodes together  [default: 2 × nodes]"
)
@click.option("--carrier-window", type=int, default=100, show_default=True, help="e2e: per bind.")
@click.option("--carrier-tps", type=int, default=100_000, show_default=True, help="e2e.")
@click.option("--dlr-delay", type=float, default=0.1, show_default=True, help="e2e: seconds.")
@click.option(
    "--pending",
    type=int,
    default=1000,
    show_default=True,
    help="e2e: most messages submitted and not yet receipted, in all (the latency is about "
    "this ÷ the rate); 0: no cap.",
)
@click.option(
    "--mixed-ids/--same-ids",
    default=False,
    help="e2e: a carrier answering with decimal ids and writing receipts in hex (as the demo).",
)
@click.option(
    "--due-in",
    type=float,
    help="schedule: seconds from the start to the messages' due time; the submits must end "
    "before it  [default: messages/4000 + 15]",
)
@click.option(
    "--drain",
    type=float,
    default=20.0,
    show_default=True,
    help="schedule: seconds the carriers' intake is watched from the due time.",
)
@click.option(
    "--duration", type=float, default=600.0, show_default=True, help="soak: seconds of load."
)
@click.option("--rate", type=int, default=300, show_default=True, help="soak: submit_sm/s.")
@click.option(
    "--max-growth",
    type=float,
    default=10.0,
    show_default=True,
    help="soak: % of RSS growth from the end of the warm-up (a fifth of the run) to the end "
    "above which the run fails.",
)
@click.pass_context
def bench(ctx: click.Context, **options) -> None:
    """Measure accepted submit_sm/s, latency and peak RSS against the protocol ceiling; print
    one JSON line. Starts its own switch on a temporary SQLite store unless --target is given.
    With --nodes N, N `smsc serve` nodes share the PostgreSQL --store-url, and each one's CPU
    and peak RSS are reported too.

    --mode accept runs the switch's accept path (validation, opt-out hash, credit, group
    commit) in this process with --binds × --window submissions waiting for their commit, and
    measures its rate and CPU a message: what the switch spends beyond the echo server.

    --mode e2e starts the switch with simulated carriers and measures messages/s fully
    receipted and the submit-to-receipt latency; it exits 1 (after its JSON line) when some
    accepted message got no receipt before the stall limit.

    --mode schedule queues 1,000,000 messages scheduled for one due time on a switch with
    simulated carriers, and measures the switch's RSS before and after, the claim query at
    that size, the delay from the due time to the first message out, and the drain rate.

    --mode soak submits --rate messages/s (with receipts, as e2e; the simulated carriers in
    processes of their own) for --duration seconds and samples the switch's RSS; it exits 1
    (after its JSON line) when the RSS grew more than --max-growth % after the warm-up, or
    when a message got no receipt.

    \b
    Example:
      smsc bench --binds 8 --window 10 --messages 100000
      smsc bench --mode accept
      smsc bench --mode e2e --messages 20000
      smsc bench --store-url postgresql+psycopg://postgres@127.0.0.1/bench --nodes 2
      smsc bench --mode schedule
      smsc bench --mode soak --duration 600
    """
    from . import bench as benchmark

    try:
        result = benchmark.run(benchmark.Options(**options))
    except benchmark.BenchError as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps(result))
    if result.get("complete") is False or result.get("flat") is False:
        ctx.exit(1)
