"""Fixtures shared by the unit tests: a store upgraded to the newest schema, cheap hashes, the
admin CLI run in process on a temp store (`smsc`, and `ready`: with an account, acme).

With SMSC_TEST_PG_URL set (tox env `pg`), every test that uses the store runs on PostgreSQL:
each in a schema of its own, dropped afterwards, in the database that URL names.
"""

import itertools
import os

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import make_url, text
from stores import PG_URL

from smsc import cli
from smsc.store import accounts, db, schema

_schemas = itertools.count()


@pytest.fixture
def db_url(tmp_path):
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'smsc.db'}"
        return
    # The schema's name is also the connections' application_name, so that the ones a test
    # left open can be ended before the schema is dropped.
    schema = f"t{os.getpid()}_{next(_schemas)}"
    admin = db.make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    options = {"options": f"-csearch_path={schema}", "application_name": schema}
    yield make_url(PG_URL).update_query_dict(options).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :s"
            ),
            {"s": schema},
        )
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def engine(db_url):
    engine = db.make_engine(db_url)
    if PG_URL:
        build(engine)
    else:
        db.upgrade(engine)
    yield engine
    engine.dispose()


def build(engine) -> None:
    """The newest schema in one go, stamped as migrated: on PostgreSQL, running every
    migration for every test would cost more than the tests (test_migrations checks that the
    two give the same schema, and runs the real migrations)."""
    with db.writing(engine) as conn:
        schema.metadata.create_all(conn)
        command.stamp(db._alembic(conn), "head")


def pytest_collection_modifyitems(config, items):
    """On PostgreSQL, only the tests that use the store run: through `db_url`, or a server of
    `smsc_factory` (tests/e2e), which gets a schema of its own there."""
    if PG_URL:
        store = {"db_url", "smsc_factory"}
        items[:] = [item for item in items if store & set(getattr(item, "fixturenames", ()))]


@pytest.fixture
def fast_scrypt(monkeypatch):
    """scrypt with n=16: the same code path, microseconds instead of ~60 ms a hash."""
    monkeypatch.setattr(accounts, "_N", 16)


@pytest.fixture
def config(tmp_path, db_url):
    path = tmp_path / "smsc.toml"
    path.write_text(f'[store]\nurl = "{db_url}"\n')
    return path


@pytest.fixture
def smsc(config, fast_scrypt):
    """Run `smsc --config <temp> ARGS…`; returns the click Result."""
    runner = CliRunner()

    def run(*args, input=None):
        return runner.invoke(cli.main, ["--config", str(config), *args], input=input)

    return run


@pytest.fixture
def ready(smsc):
    """A store at head with one account, acme."""
    assert smsc("db", "upgrade").exit_code == 0
    assert smsc("account", "add", "acme", "--password", "s3cret").exit_code == 0
    return smsc
