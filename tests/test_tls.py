"""TLS (smsc.tls): the config keys and their one-line errors, the PEM files read at start, the
SMPP listeners wired in smsc.app, and carrier links over real loopback TLS connections to an
in-process simulated carrier: bound when its certificate verifies, refused (and said so in the
log) when it chains to another CA or names another host, bound anyway with tls_verify = false.

Certificates are made here (tests/certs.py). The network tests are trial TestCases: trial runs
the reactor for them, and fails one that leaves a connection or a timer behind."""

import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from certs import CA
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet import defer, reactor, task, tcp
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import MemoryReactor
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest

from smsc import app, config, tls
from smsc.config import CarrierConfig, Config, ConfigError, SimulatorConfig, SmppConfig, SmtpConfig
from smsc.routing.links import Carrier
from smsc.simulator import Simulator

# -- config ------------------------------------------------------------------------------------


def load_text(tmp_path, text: str) -> Config:
    path = tmp_path / "smsc.toml"
    path.write_text(text)
    return config.load(path)


def test_tls_keys_default_to_plain_tcp(tmp_path):
    loaded = load_text(tmp_path, "[[carriers]]\nname = 'orange'\n")
    assert (loaded.smpp.tls_port, loaded.smpp.plain) == (None, True)
    carrier = loaded.carriers[0]
    assert (carrier.tls, carrier.tls_ca, carrier.tls_verify) == (False, None, True)


def test_tls_keys_are_read(tmp_path):
    loaded = load_text(
        tmp_path,
        "[smpp]\ntls_port = 3550\ntls_cert = 'c.pem'\ntls_key = 'k.pem'\nplain = false\n"
        "[[carriers]]\nname = 'orange'\ntls = true\ntls_ca = 'ca.pem'\n"
        "[[carriers]]\nname = 'lab'\ntls = true\ntls_verify = false\n",
    )
    assert (loaded.smpp.tls_port, loaded.smpp.tls_cert, loaded.smpp.tls_key) == (
        3550, "c.pem", "k.pem",
    )  # fmt: skip
    assert loaded.smpp.plain is False
    orange, lab = loaded.carriers
    assert (orange.tls, orange.tls_ca, orange.tls_verify) == (True, "ca.pem", True)
    assert (lab.tls, lab.tls_ca, lab.tls_verify) == (True, None, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[smpp]\ntls_port = 3550\n", "smpp.tls_cert: required with tls_port"),
        ("[smpp]\ntls_port = 3550\ntls_cert = 'c.pem'\n", "smpp.tls_key: required with tls_port"),
        (
            "[smpp]\ntls_cert = 'c.pem'\ntls_key = 'k.pem'\n",
            "smpp.tls_port: required with tls_cert",
        ),
        ("[smpp]\nplain = false\n", "smpp.plain: false needs tls_port, tls_cert and tls_key"),
        ("[smpp]\ntls_port = '3550'\n", "smpp.tls_port: expected int, got str"),
        ("[[carriers]]\nname = 'o'\ntls_ca = 'ca.pem'\n", "carriers[0].tls_ca: needs tls = true"),
        (
            "[[carriers]]\nname = 'o'\ntls_verify = false\n",
            "carriers[0].tls_verify: needs tls = true",
        ),
        ("[[carriers]]\nname = 'o'\ntls = 'yes'\n", "carriers[0].tls: expected bool, got str"),
        (
            "[[carriers]]\nname = 'o'\nsimulate = true\ntls = true\n",
            "carriers[0].simulator.tls_cert: required with simulate = true and tls = true",
        ),
        (
            "[[carriers]]\nname = 'o'\nsimulate = true\ntls = true\n"
            "simulator = {tls_cert = 'c.pem'}\n",
            "carriers[0].simulator.tls_key: required with tls_cert",
        ),
        (
            "[[carriers]]\nname = 'o'\nsimulate = true\n"
            "simulator = {tls_cert = 'c.pem', tls_key = 'k.pem'}\n",
            "carriers[0].simulator.tls_cert: needs simulate = true and tls = true",
        ),
    ],
)
def test_tls_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text)
    assert str(error.value) == message


# -- files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A directory, a certificate for localhost from an intermediate CA (the intermediate after
    it in the file) and its key, and the key of a certificate from another CA."""
    directory = tmp_path_factory.mktemp("pki")
    ca = CA("smsc test intermediate CA", issuer=CA("smsc test root CA"))
    cert, key = ca.issue(directory, "server", "localhost", "127.0.0.1")
    _, other_key = CA("another CA").issue(directory, "other", "localhost")
    return directory, cert, key, other_key


def test_server_options_present_the_certificate_then_its_intermediates(pki):
    _, cert, key, _ = pki
    options = tls.server_options(cert, key, "smpp")
    assert options.certificate.subject.rfc4514_string() == "CN=localhost"
    chain = [c.subject.rfc4514_string() for c in options.extraCertChain]
    assert chain == ["CN=smsc test intermediate CA"]


def test_unusable_files_stop_the_start_in_one_line(pki):
    directory, cert, key, other_key = pki
    encrypted = directory / "encrypted.key"
    encrypted.write_bytes(_encrypted(Path(key).read_bytes()))
    missing = str(directory / "missing.pem")
    for args, message in (
        ((missing, key), f"smpp.tls_cert: cannot read {missing}: No such file or directory"),
        ((cert, missing), f"smpp.tls_key: cannot read {missing}: No such file or directory"),
        ((key, key), f"smpp.tls_cert: no PEM certificate in {key}"),
        ((cert, cert), f"smpp.tls_key: no PEM private key in {cert}"),
        ((cert, other_key), f"smpp.tls_key: {other_key} is not the key of {cert}"),
        (
            (cert, str(encrypted)),
            f"smpp.tls_key: {encrypted} is encrypted; give it without a passphrase",
        ),
    ):
        with pytest.raises(ConfigError) as error:
            tls.server_options(*args, "smpp")
        assert str(error.value) == message


def test_carrier_tls_options_are_made_at_start_for_the_tls_carriers_only(pki):
    directory, cert, _, _ = pki
    plain, over_tls = CarrierConfig("plain"), CarrierConfig("orange", tls=True, tls_ca=cert)
    assert list(app._tls(Config(carriers=[plain, over_tls]))[1]) == ["orange"]
    missing = str(directory / "missing.pem")
    over_tls.tls_ca = missing
    with pytest.raises(ConfigError) as error:
        app._tls(Config(carriers=[plain, over_tls]))
    assert (
        str(error.value) == f"carriers[1].tls_ca: cannot read {missing}: No such file or directory"
    )


def test_smtp_starttls_options_are_made_at_start(pki):
    directory, cert, key, _ = pki
    assert app._tls(Config(smtp=SmtpConfig()))[2] is None  # no files: STARTTLS not offered
    assert app._tls(Config(smtp=SmtpConfig(tls_cert=cert, tls_key=key)))[2] is not None
    missing = str(directory / "missing.pem")
    with pytest.raises(ConfigError) as error:
        app._tls(Config(smtp=SmtpConfig(tls_cert=missing, tls_key=key)))
    assert str(error.value) == f"smtp.tls_cert: cannot read {missing}: No such file or directory"


def _encrypted(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


# -- listeners ---------------------------------------------------------------------------------


def test_tls_listener_beside_the_plain_one_with_the_same_server(pki):
    _, cert, key, _ = pki
    smpp = SmppConfig(port=2775, tls_port=3550, tls_cert=cert, tls_key=key)
    listener_tls, _, _ = app._tls(Config(smpp=smpp))
    memory, server = MemoryReactor(), object()
    names = [name for name, _ in app._listen_smpp(server, Config(smpp=smpp), memory, listener_tls)]
    assert names == ["SMPP over TLS", "SMPP"]
    ((tls_port, tls_factory, options, _, tls_host),) = memory.sslServers
    ((port, factory, _, host),) = memory.tcpServers
    assert (tls_port, port) == (3550, 2775) and tls_factory is factory is server
    assert tls_host == host == "127.0.0.1" and options is listener_tls


def test_plain_false_listens_on_tls_only(pki):
    _, cert, key, _ = pki
    smpp = SmppConfig(tls_port=3550, tls_cert=cert, tls_key=key, plain=False)
    listener_tls, _, _ = app._tls(Config(smpp=smpp))
    memory = MemoryReactor()
    app._listen_smpp(object(), Config(smpp=smpp), memory, listener_tls)
    assert [p for p, *_ in memory.sslServers] == [3550] and memory.tcpServers == []


def test_no_tls_keys_no_tls_listener():
    memory = MemoryReactor()
    listener_tls, carriers, smtp = app._tls(Config())
    assert (listener_tls, carriers, smtp) == (None, {}, None)
    app._listen_smpp(object(), Config(), memory, listener_tls)
    assert memory.sslServers == [] and [p for p, *_ in memory.tcpServers] == [2775]


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            SSL.Error([("SSL routines", "", "certificate verify failed")]),
            "certificate verify failed",
        ),
        (SSL.SysCallError(-1, "Unexpected EOF"), "(-1, 'Unexpected EOF')"),
        (SSL.ZeroReturnError(), "ZeroReturnError"),
        (ConnectionDone(), None),  # a clean close: not TLS's doing
    ],
)
def test_what_a_tls_failure_says(error, said):
    assert tls.failure(Failure(error)) == said


# -- carriers over TLS -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _signal_handlers():
    """Trial runs the reactor with Twisted's SIGINT and SIGTERM handlers, and leaves them: put
    pytest's back, or Ctrl-C and SIGTERM would go to a reactor that no longer runs."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


class Events:
    """The dispatcher's side of a carrier: `bound` fires when a link binds."""

    def __init__(self):
        self.bound = defer.Deferred()

    def room_changed(self):
        if not self.bound.called:
            self.bound.callback(None)

    def carrier_down(self, carrier):
        pass

    def part_lost(self, part):
        pass


class CarrierOverTls(unittest.TestCase):
    """The switch's links to a simulated carrier that listens with TLS on 127.0.0.1, reached
    as `localhost` (the host name its certificate is checked against)."""

    timeout = 20  # seconds, per test (trial's default is 120)

    def setUp(self):
        # Not trial's mktemp(): relative to the working directory, it would litter the checkout.
        self.dir = Path(tempfile.mkdtemp(prefix="smsc-tls-"))
        self.addCleanup(shutil.rmtree, self.dir)
        self.root = CA("smsc test root CA")
        self.ca = CA("smsc test intermediate CA", issuer=self.root)
        self.root_file = self.root.write(self.dir)
        self.warnings: list[str] = []
        self.warned = defer.Deferred()
        globalLogPublisher.addObserver(self._observe)
        self.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event):
        if event.get("log_level") is LogLevel.warn:
            self.warnings.append(formatEvent(event))
            if not self.warned.called:
                self.warned.callback(None)

    def simulated_carrier(self, *names: str, ca: CA | None = None) -> tuple[Simulator, int]:
        """A simulator presenting a certificate for `names` (issued by the intermediate CA,
        sent with it); returns it and its port."""
        cert, key = (ca or self.ca).issue(self.dir, "carrier", *names)
        sim = Simulator("orange", reactor, SimulatorConfig())
        port = sim.listen(reactor, "127.0.0.1", 0, tls.server_options(cert, key, "test"))
        self.addCleanup(port.stopListening)
        return sim, port.getHost().port

    def connect(self, port: int, **keys) -> tuple[Carrier, Events]:
        config = CarrierConfig("orange", host="localhost", port=port, tls=True, **keys)
        events = Events()
        options = tls.client_options(config, "carriers[0]")
        carrier = Carrier(config, reactor, events, on_deliver=None, tls=options)
        carrier.allow(1, reactor)
        self.addCleanup(self._stop, carrier)
        return carrier, events

    @defer.inlineCallbacks
    def _stop(self, carrier: Carrier):
        carrier.stop()
        # Trial fails a test that leaves a connection open: wait until both ends are closed.
        yield _until(lambda: not _connections())

    @defer.inlineCallbacks
    def refused(self, sim: Simulator, carrier: Carrier):
        """The first attempt fails in the TLS handshake, and says why in a warning."""
        yield self.warned.addTimeout(10, reactor)
        assert not carrier.bound and sim.sessions == [] and sim.max_binds == 0
        (warning,) = self.warnings
        assert warning.startswith("carrier orange: TLS with localhost:")
        return warning

    @defer.inlineCallbacks
    def test_binds_when_the_certificate_chains_to_tls_ca_and_names_the_host(self):
        sim, port = self.simulated_carrier("localhost", "127.0.0.1")
        carrier, events = self.connect(port, tls_ca=self.root_file)
        yield events.bound.addTimeout(10, reactor)
        assert carrier.bound and len(sim.sessions) == 1
        assert ISSLTransport.providedBy(sim.sessions[0].transport)  # not a plain socket
        assert self.warnings == []

    @defer.inlineCallbacks
    def test_refuses_a_certificate_from_another_ca(self):
        sim, port = self.simulated_carrier("localhost", ca=CA("someone else's CA"))
        carrier, _ = self.connect(port, tls_ca=self.root_file)
        warning = yield self.refused(sim, carrier)
        assert warning.endswith("failed: certificate verify failed")

    @defer.inlineCallbacks
    def test_refuses_a_certificate_for_another_host_name(self):
        sim, port = self.simulated_carrier("smpp.carrier.example", "127.0.0.1")
        carrier, _ = self.connect(port, tls_ca=self.root_file)
        warning = yield self.refused(sim, carrier)
        assert warning.endswith("failed: the certificate is not for this host name")

    @defer.inlineCallbacks
    def test_without_tls_ca_the_system_trust_store_decides(self):
        sim, port = self.simulated_carrier("localhost")
        carrier, _ = self.connect(port)
        warning = yield self.refused(sim, carrier)  # no public CA signed ours
        assert warning.endswith("failed: certificate verify failed")

    @defer.inlineCallbacks
    def test_tls_verify_false_takes_any_certificate(self):
        sim, port = self.simulated_carrier("smpp.carrier.example", ca=CA("someone else's CA"))
        carrier, events = self.connect(port, tls_verify=False)
        yield events.bound.addTimeout(10, reactor)
        assert carrier.bound and ISSLTransport.providedBy(sim.sessions[0].transport)


def _connections() -> list:
    """The reactor's open TCP connections, either end."""
    selectables = reactor.getReaders() + reactor.getWriters()
    return [s for s in selectables if isinstance(s, tcp.Connection)]


def _until(predicate, interval: float = 0.01, timeout: float = 5.0) -> defer.Deferred:
    """Fires once `predicate()` is true (polled on the reactor); fails after `timeout`."""

    @defer.inlineCallbacks
    def poll():
        while not predicate():
            yield task.deferLater(reactor, interval, lambda: None)

    return poll().addTimeout(timeout, reactor)
