"""Who a request on the `[http]` listener comes from: an account's system_id and password
(HTTP Basic, or the web page's login form), or a bearer token (`smsc account token add`).

Passwords are checked as SMPP binds check them, under the same lockouts (smsc.limits): a locked
system_id or address is refused without the password check, failures count towards a lockout,
a success forgets the system_id's failures. Unlike a bind, a refusal is answered at once: an
HTTP client gets its 401 without a held answer. Neither a password nor a token is logged.
"""

import base64
import binascii

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from .. import limits
from ..store import tokens
from ..store.accounts import Account
from . import Context

_log = Logger()
# Refusals that count towards a lockout, as a bind's do (smsc.server): a wrong password counts
# for the system_id and the address, an unknown one or a foreign network for the address only.
_COUNTED = {"password", "system_id", "network"}


def login(ctx: Context, system_id: str, password: str, host: str) -> Deferred:
    """Deferred: the account whose password this is, when it may log in from `host`; else
    None (locked out, unknown, wrong password, disabled, outside its networks)."""
    address = limits.address_key(host)
    guard = ctx.server.guard
    if guard.locked(system_id, address) is not None:  # before the KDF: its cost is the point
        _refused(system_id, host, "locked out")
        return succeed(None)

    def checked(result):
        if guard.locked(system_id, address) is not None:  # locked while this one was checked
            _refused(system_id, host, "locked out")
            return None
        if isinstance(result, Account):
            guard.succeeded(system_id)
            return result
        if result.reason in _COUNTED:
            guard.failed(system_id if result.reason == "password" else None, address)
        _refused(system_id, host, result.reason)
        return None

    return ctx.server.authenticate(system_id, password, host).addCallback(checked)


def bearer(ctx: Context, token: str, host: str) -> Deferred:
    """Deferred: the account of this token when it is enabled and `host` is in its networks,
    else None. An unknown token counts as a failure of the address (a lockout refuses it)."""
    address = limits.address_key(host)
    guard = ctx.server.guard
    if guard.locked("", address) is not None:  # the address only: no system_id is ""
        _refused("(token)", host, "locked out")
        return succeed(None)

    def found(account: Account | None):
        if account is None:
            guard.failed(None, address)
            _refused("(token)", host, "unknown token")
            return None
        if not account.enabled or not limits.allows(account.networks, host):
            _refused(account.system_id, host, "disabled" if not account.enabled else "network")
            return None
        return account

    return ctx.store.read(tokens.account_of, tokens.digest(token)).addCallback(found)


def authenticate_request(ctx: Context, request) -> Deferred:
    """Deferred: the account a request's Authorization header names (Basic or Bearer), or None
    when there is none or it does not hold."""
    host = getattr(request.getClientAddress(), "host", "?")
    header = (request.getHeader("authorization") or "").strip()
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return bearer(ctx, credentials, host)
    if scheme.lower() == "basic":
        pair = _basic(credentials)
        if pair is not None:
            return login(ctx, *pair, host)
    return succeed(None)


def _basic(credentials: str) -> tuple[str, str] | None:
    """(system_id, password) of Basic credentials (RFC 7617, UTF-8), or None when malformed."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    system_id, colon, password = decoded.partition(":")
    return (system_id, password) if colon and system_id else None


def _refused(who: str, host: str, why: str) -> None:
    _log.info("HTTP authentication refused for {who} from {host}: {why}", who=who, host=host,
              why=why)  # fmt: skip
