"""TOML → typed config: defaults, the shipped files, and one-line errors naming the key."""

import socket
from pathlib import Path

import pytest

from smsc import config
from smsc.config import (
    AccountConfig,
    Config,
    ConfigError,
    OptoutConfig,
    SmppConfig,
    StoreConfig,
)

CONF = Path(__file__).resolve().parent.parent / "conf"


def load_text(tmp_path, text: str) -> Config:
    path = tmp_path / "smsc.toml"
    path.write_text(text)
    return config.load(path)


def test_empty_file_gives_the_defaults(tmp_path):
    loaded = load_text(tmp_path, "")
    assert loaded == Config()
    assert loaded.smpp == SmppConfig(
        host="127.0.0.1",
        port=2775,
        window=50,
        system_id="smsc",
        max_pdu_size=65536,
        session_init_timer=30.0,
        enquire_link_timer=30.0,
        inactivity_timer=300.0,
        response_timer=30.0,
    )
    assert loaded.store == StoreConfig(url="sqlite:///smsc.db")
    assert loaded.accounts == []


def test_a_section_keeps_the_defaults_it_does_not_name(tmp_path):
    loaded = load_text(tmp_path, "[smpp]\nport = 2776\n")
    assert loaded.smpp.port == 2776
    assert loaded.smpp.window == 50 and loaded.smpp.host == "127.0.0.1"


def test_demo_toml():
    loaded = config.load(CONF / "demo.toml")
    assert (loaded.smpp.host, loaded.smpp.port) == ("127.0.0.1", 2775)
    assert loaded.store.url.startswith("sqlite:///")
    assert loaded.accounts == [AccountConfig(system_id="demo", password="demo")]


def test_cluster_section(tmp_path):
    assert load_text(tmp_path, "").cluster.node == socket.gethostname()[:64]
    loaded = load_text(tmp_path, '[cluster]\nnode = "a"\nheartbeat = 1\nlease = 3\n')
    assert (loaded.cluster.node, loaded.cluster.heartbeat, loaded.cluster.lease) == ("a", 1.0, 3.0)
    for text, error in (
        ('node = ""', "cluster.node: 1 to 64 characters"),
        ("heartbeat = 2\nlease = 5", "cluster.lease: must be at least three heartbeats"),
        ("heartbeat = 0", "cluster.heartbeat: must be more than 0 seconds"),
    ):
        with pytest.raises(ConfigError, match=error):
            load_text(tmp_path, f"[cluster]\n{text}\n")


def test_queue_receipt_timeout(tmp_path):
    assert load_text(tmp_path, "").queue.receipt_timeout == 72 * 3600.0
    assert load_text(tmp_path, "[queue]\nreceipt_timeout = 0\n").queue.receipt_timeout == 0.0
    with pytest.raises(ConfigError, match="queue.receipt_timeout: must be 0 or more, not -1"):
        load_text(tmp_path, "[queue]\nreceipt_timeout = -1\n")


def test_a_sqlite_too_old_for_the_store_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(config.sqlite3, "sqlite_version_info", (3, 37, 2))
    monkeypatch.setattr(config.sqlite3, "sqlite_version", "3.37.2")
    with pytest.raises(
        ConfigError, match="store.url: .* needs SQLite 3.38 or newer; .* has 3.37.2"
    ):
        load_text(tmp_path, '[store]\nurl = "sqlite:///x.db"\n')
    url = "postgresql+psycopg://smsc@127.0.0.1/smsc"  # not the machine's SQLite's business
    assert load_text(tmp_path, f'[store]\nurl = "{url}"\n').store.url == url


def test_smtp_starttls_needs_both_files(tmp_path):
    for text, error in (
        ('tls_cert = "c.pem"', "smtp.tls_key: required with tls_cert"),
        ("tls_required = true", "smtp.tls_required: needs tls_cert and tls_key"),
    ):
        with pytest.raises(ConfigError, match=error):
            load_text(tmp_path, f"[smtp]\n{text}\n")
    loaded = load_text(tmp_path, '[smtp]\ntls_cert = "c.pem"\ntls_key = "k.pem"\n').smtp
    assert (loaded.tls_cert, loaded.tls_key, loaded.tls_required) == ("c.pem", "k.pem", False)


def test_smsc_toml():
    loaded = config.load(CONF / "smsc.toml")
    assert loaded.smpp.port == 2775 and loaded.smpp.window == 50
    assert loaded.smpp.inactivity_timer == 300.0
    assert isinstance(loaded.smpp.session_init_timer, float)  # written as 30 in the file
    assert loaded.store.url


def test_string_path(tmp_path):
    (tmp_path / "c.toml").write_text('[store]\nurl = "sqlite:///x.db"\n')
    assert config.load(str(tmp_path / "c.toml")).store.url == "sqlite:///x.db"


def test_int_accepted_for_float(tmp_path):
    loaded = load_text(tmp_path, "[smpp]\nresponse_timer = 5\ninactivity_timer = 0.5\n")
    assert loaded.smpp.response_timer == 5.0 and type(loaded.smpp.response_timer) is float
    assert loaded.smpp.inactivity_timer == 0.5


def test_accounts(tmp_path):
    loaded = load_text(
        tmp_path,
        '[[accounts]]\nsystem_id = "a"\npassword = "1"\n'
        '[[accounts]]\nsystem_id = "b"\npassword = "2"\n',
    )
    assert loaded.accounts == [AccountConfig("a", "1"), AccountConfig("b", "2")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "colour: unknown key"),
        ("[http]\ncallback_networks = ['10.0.0.0/33']\n", "http.callback_networks: '10.0.0.0/33'"),
        ("[smtp]\ndomain = 'a@b'\n", "smtp.domain: a domain name"),
        ("[smtp]\nrelay_port = 70000\n", "smtp.relay_port"),
        ("[carrier]\nname = 'x'\n", "carrier: unknown key"),
        ("[smpp]\nprot = 2775\n", "smpp.prot: unknown key"),
        ("[store]\nurl = 'x'\npool = 3\n", "store.pool: unknown key"),
        (
            "[[accounts]]\nsystem_id = 'a'\npassword = 'b'\ntps = 5\n",
            "accounts[0].tps: unknown key",
        ),
        ("[smpp]\nport = '2775'\n", "smpp.port: expected int, got str"),
        ("[smpp]\nport = 2775.0\n", "smpp.port: expected int, got float"),
        ("[smpp]\nport = true\n", "smpp.port: expected int, got bool"),
        ("[smpp]\nresponse_timer = '30'\n", "smpp.response_timer: expected float, got str"),
        ("[smpp]\nresponse_timer = false\n", "smpp.response_timer: expected float, got bool"),
        ("[smpp]\nhost = 127\n", "smpp.host: expected str, got int"),
        ("[store]\nurl = ['a']\n", "store.url: expected str, got list"),
        ("smpp = 1\n", "smpp: expected a table"),
        ("[accounts]\nsystem_id = 'a'\n", "accounts: expected a list"),
        ("accounts = [1]\n", "accounts[0]: expected a table"),
        ("[[accounts]]\nsystem_id = 'demo'\n", "accounts[0].password: required"),
        (
            "[[accounts]]\nsystem_id = 'a'\npassword = 'b'\n[[accounts]]\npassword = 'c'\n",
            "accounts[1].system_id: required",
        ),
        ("[[accounts]]\nsystem_id = 'demo'\npassword = 7\n", "accounts[0].password: expected str"),
    ],
)
def test_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text)
    assert str(error.value) == message or str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"smsc\.toml: not valid TOML: .*line 2"):
        load_text(tmp_path, "[smpp]\nport = = 1\n")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere\.toml: No such file"):
        config.load(tmp_path / "nowhere.toml")


# -- [optout] -------------------------------------------------------------------------------


def test_optout_defaults(tmp_path):
    assert load_text(tmp_path, "").optout == OptoutConfig(hash_key=None, retention_days=1095)
    assert load_text(tmp_path, "[optout]\n").optout == OptoutConfig()


def test_optout_values(tmp_path):
    loaded = load_text(
        tmp_path, '[optout]\nhash_key = "k3y-of-the-switch"\nretention_days = 1200\n'
    )
    assert loaded.optout == OptoutConfig(hash_key="k3y-of-the-switch", retention_days=1200)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[optout]\nhash = 'x'\n", "optout.hash: unknown key"),
        ("[optout]\nhash_key = 5\n", "optout.hash_key: expected str, got int"),
        ("[optout]\nhash_key = ''\n", "optout.hash_key: must not be empty"),
        ("[optout]\nretention_days = 0\n", "optout.retention_days: must be at least 1"),
        ("[optout]\nretention_days = -3\n", "optout.retention_days: must be at least 1"),
        ("[optout]\nretention_days = '1095'\n", "optout.retention_days: expected int, got str"),
        ("[optout]\nretention_days = 3.5\n", "optout.retention_days: expected int, got float"),
        ("optout = 1\n", "optout: expected a table"),
    ],
)
def test_optout_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


# -- [logging] ------------------------------------------------------------------------------


def test_logging_defaults_and_values(tmp_path):
    assert load_text(tmp_path, "").logging == config.LoggingConfig("text", "info", False)
    loaded = load_text(tmp_path, '[logging]\nformat = "json"\nlevel = "debug"\nreveal = true\n')
    assert loaded.logging == config.LoggingConfig("json", "debug", True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[logging]\nformat = 'xml'\n", "logging.format: must be one of text, json"),
        ("[logging]\nlevel = 'loud'\n", "logging.level: must be one of"),
        ("[logging]\nreveal = 'yes'\n", "logging.reveal: expected bool, got str"),
        ("[logging]\ncolour = true\n", "logging.colour: unknown key"),
    ],
)
def test_logging_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text)
    assert str(error.value).startswith(message)
