"""The web page's sessions: a cookie signed with a key of the switch (kept in the store, so that
every node and every restart accept it), and the CSRF token of the forms, derived from it.

The cookie is `ACCOUNT_ID.EXPIRY.MAC`: HMAC-SHA256 over the account id, the expiry and the
account's password hash, so that a new password ends the sessions opened with the old one.
Nothing is kept on the server: a session ends at its expiry, or when its browser drops it.
"""

import hashlib
import hmac

from ..store.accounts import Account

COOKIE = b"smsc_session"
LIFETIME = 12 * 3600  # seconds
KEY_NAME = "web_session_key"  # in the store's settings


def _mac(key: bytes, account_id: int, expiry: int, password_hash: str) -> str:
    signed = f"{account_id}.{expiry}.{password_hash}".encode()
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def issue(key: bytes, account: Account, now: float) -> str:
    """A new session's cookie value."""
    expiry = int(now) + LIFETIME
    return f"{account.id}.{expiry}.{_mac(key, account.id, expiry, account.password_hash)}"


def claimed(value: str, now: float) -> int | None:
    """The account id a cookie claims, if it has the form of one that has not expired (to be
    checked with `valid` against that account)."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]) if int(parts[1]) > now else None


def valid(key: bytes, value: str, account: Account) -> bool:
    """Whether a cookie (that `claimed` this account) was signed by us for it."""
    account_id, expiry, mac = value.split(".")
    expected = _mac(key, account.id, int(expiry), account.password_hash)
    return int(account_id) == account.id and hmac.compare_digest(mac, expected)


def csrf_token(key: bytes, value: str) -> str:
    """The token the session's forms carry: a page of another site cannot read it."""
    return hmac.new(key, b"csrf." + value.encode(), hashlib.sha256).hexdigest()[:32]


def csrf_ok(key: bytes, value: str, token: str) -> bool:
    return hmac.compare_digest(token.encode(), csrf_token(key, value).encode())
