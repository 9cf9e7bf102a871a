"""Bearer tokens of the HTTP API (smsc.store.tokens) and `smsc account token`: printed once,
kept as a SHA-256 only, listed by fingerprint, revoked by it."""

import hashlib
import json

import pytest
from sqlalchemy import select

from smsc.store import accounts, tokens
from smsc.store.accounts import AccountError
from smsc.store.db import writing
from smsc.store.schema import api_tokens

NOW = 1_767_225_600.0


@pytest.fixture
def acme(engine, fast_scrypt):
    with writing(engine) as conn:
        return accounts.add(conn, "acme", "pw", NOW)


def test_a_token_is_kept_as_its_hash_and_finds_its_account(engine, acme):
    with writing(engine) as conn:
        token = tokens.add(conn, acme.id, "billing", NOW)
    assert token.startswith("smsc_") and len(token) > 40
    with engine.connect() as conn:
        (stored,) = conn.execute(select(api_tokens)).all()
        assert stored.token_hash == hashlib.sha256(token.encode()).digest()
        assert token.encode() not in stored.token_hash + stored.label.encode()
        assert tokens.account_of(conn, tokens.digest(token)).system_id == "acme"
        assert tokens.account_of(conn, tokens.digest(token + "x")) is None
        assert tokens.of(conn, acme.id) == [
            {"fingerprint": stored.token_hash.hex()[:12], "label": "billing", "created_at": NOW}
        ]


def test_revoke_needs_the_whole_fingerprint_of_the_accounts_own_token(engine, acme):
    with writing(engine) as conn:
        other = accounts.add(conn, "shop", "pw", NOW)
        token = tokens.add(conn, acme.id, "", NOW)
        shown = tokens.fingerprint(tokens.digest(token))
        assert not tokens.revoke(conn, acme.id, shown[:6])  # too short to be sure
        assert not tokens.revoke(conn, other.id, shown)  # not shop's
        assert tokens.revoke(conn, acme.id, shown.upper())
        assert tokens.account_of(conn, tokens.digest(token)) is None
        assert not tokens.revoke(conn, acme.id, shown)


def test_labels_are_short_and_printable(engine, acme):
    with writing(engine) as conn:
        with pytest.raises(AccountError, match="--label"):
            tokens.add(conn, acme.id, "x" * 65, NOW)
        with pytest.raises(AccountError, match="--label"):
            tokens.add(conn, acme.id, "a\nb", NOW)


def test_cli_adds_lists_and_revokes(ready, engine):
    added = ready("account", "token", "add", "acme", "--label", "billing app")
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert token.startswith("smsc_")
    shown = tokens.fingerprint(tokens.digest(token))
    listed = json.loads(ready("account", "token", "list", "acme", "--json").stdout)
    assert [(t["fingerprint"], t["label"]) for t in listed] == [(shown, "billing app")]
    assert listed[0]["created_at"].endswith("+00:00")
    table = ready("account", "token", "list", "acme").stdout
    assert shown in table and "billing app" in table and token not in table
    revoked = ready("account", "token", "revoke", "acme", shown)
    assert revoked.exit_code == 0 and shown in revoked.stdout
    with engine.connect() as conn:
        assert tokens.account_of(conn, tokens.digest(token)) is None
    again = ready("account", "token", "revoke", "acme", shown)
    assert again.exit_code == 1
    assert again.stderr.strip() == f"Error: account acme has no token {shown}"


def test_cli_refuses_unknown_accounts_and_long_labels(ready):
    unknown = ready("account", "token", "add", "nobody")
    assert unknown.exit_code == 1 and "nobody" in unknown.stderr and unknown.stdout == ""
    long = ready("account", "token", "add", "acme", "--label", "x" * 65)
    assert long.exit_code == 1 and "--label" in long.stderr and long.stdout == ""
