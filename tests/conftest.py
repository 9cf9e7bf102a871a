"""Fixtures shared by the unit tests: a store upgraded to the newest schema, cheap hashes."""

import pytest

from smsc.store import accounts, db


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'smsc.db'}"


@pytest.fixture
def engine(db_url):
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def fast_scrypt(monkeypatch):
    """scrypt with n=16: the same code path, microseconds instead of ~60 ms a hash."""
    monkeypatch.setattr(accounts, "_N", 16)
