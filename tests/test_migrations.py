"""Schema migrations: empty → head, the schema module matches them, behind is refused."""

import shutil

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from smsc.store import db, schema
from smsc.store.service import Store

_EXTRA = '''"""a later revision, for the test

Revision ID: 0099
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("later", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("later")
'''


@pytest.fixture
def engine(db_url):
    """Built by the migrations themselves, on every store (conftest's may take a short cut)."""
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def empty(db_url):
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


def test_upgrade_from_empty_to_head(empty):
    current, head = db.revisions(empty)
    assert current is None and head
    db.upgrade(empty)
    assert db.revisions(empty) == (head, head)
    found = inspect(empty)
    assert {"accounts", "messages", "alembic_version"} <= set(found.get_table_names())
    assert {i["name"] for i in found.get_indexes("messages")} == {
        "messages_queue",
        "messages_account_destination",
        "messages_multi",
    }
    db.upgrade(empty)  # a second time: nothing to do
    assert db.revisions(empty) == (head, head)
    db.check_schema(empty)


def test_schema_module_matches_the_migrations(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, schema.metadata) == []


def test_schema_diff_would_be_seen(engine):
    """The comparison above can fail: a column the migrations lack shows up."""
    from sqlalchemy import Column, Integer, MetaData, Table

    changed = MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(changed)
    Table("accounts", changed, Column("credit", Integer), extend_existing=True)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), changed)
    assert [d[0] for d in diffs] == ["add_column"]


def test_downgrade_to_base_and_back(engine):
    with db.writing(engine) as conn:
        command.downgrade(db._alembic(conn), "base")
    assert db.revisions(engine)[0] is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(engine)
    db.check_schema(engine)


def test_check_schema_on_an_empty_database(empty):
    with pytest.raises(db.SchemaBehind, match=r"at nothing.*run `smsc db upgrade`"):
        db.check_schema(empty)


def test_check_schema_on_an_older_database(engine, tmp_path, monkeypatch):
    _, old_head = db.revisions(engine)
    newer = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / "0099_later.py").write_text(_EXTRA.format(head=old_head))
    monkeypatch.setattr(db, "MIGRATIONS", newer)
    assert db.revisions(engine) == (old_head, "0099")
    with pytest.raises(db.SchemaBehind) as behind:
        db.check_schema(engine)
    message = str(behind.value)
    assert old_head in message and "0099" in message and "smsc db upgrade" in message
    db.upgrade(engine)
    db.check_schema(engine)
    assert "later" in inspect(engine).get_table_names()


def test_store_refuses_to_start_behind(empty):
    store = Store(str(empty.url), reactor=None)
    try:
        with pytest.raises(db.SchemaBehind, match="smsc db upgrade"):
            store.start()
        assert not store.writer._thread.is_alive()
    finally:
        store.engine.dispose()


def test_a_database_from_a_newer_smsc(engine, tmp_path, monkeypatch):
    """Upgraded by a newer smsc: upgrading cannot help, and the message says so."""
    original = db.MIGRATIONS
    newer = tmp_path / "migrations"
    shutil.copytree(original, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / "0099_later.py").write_text(_EXTRA.format(head=db.revisions(engine)[1]))
    monkeypatch.setattr(db, "MIGRATIONS", newer)
    db.upgrade(engine)
    monkeypatch.setattr(db, "MIGRATIONS", original)
    with pytest.raises(db.SchemaBehind, match="0099, which this smsc does not know") as ahead:
        db.check_schema(engine)
    assert "smsc db upgrade" not in str(ahead.value)
    with pytest.raises(db.SchemaBehind, match="newer smsc"):
        db.upgrade(engine)
    assert db.revisions(engine)[0] == "0099"


def test_the_cluster_revision_queues_again_what_was_in_flight(empty):
    """Rows left SENDING by a switch before 0005 belong to no node: queued again."""
    db.upgrade(empty, "0004")
    with db.writing(empty) as conn:
        conn.exec_driver_sql(
            "INSERT INTO accounts (system_id, password_hash, max_binds, tps, enabled, created_at)"
            " VALUES ('acme', '-', 1, 0, true, 0)"
        )
        for i, state in enumerate(("SENDING", "ENROUTE"), start=1):
            conn.exec_driver_sql(
                "INSERT INTO messages (id, account_id, service_type, source_ton, source_npi,"
                " source, destination, esm_class, protocol_id, priority, registered_delivery,"
                " data_coding, body, tlvs, submitted_at, due_at, expires_at, state, updated_at)"
                f" VALUES ({i}, 1, '', 0, 0, '36000', '33600000001', 0, 0, 0, 0, 0, '', '',"
                f" 0, 0, 9e9, '{state}', 0)"
            )
        conn.exec_driver_sql(
            "INSERT INTO outbox (account_id, source_ton, source_npi, source, destination,"
            " esm_class, data_coding, body, tlvs, state, attempts, created_at, due_at,"
            " expires_at) VALUES (1, 0, 0, '33600000001', '36000', 4, 0, '', '', 'SENDING',"
            " 1, 0, 0, 9e9)"
        )
    db.upgrade(empty)
    with empty.connect() as conn:
        states = conn.exec_driver_sql("SELECT state FROM messages ORDER BY id").scalars().all()
        assert states == ["ACCEPTED", "ENROUTE"]
        assert conn.exec_driver_sql("SELECT state FROM outbox").scalar() == "PENDING"
