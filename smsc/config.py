"""TOML configuration → typed, checked config. An unknown key or a value of the wrong type stops
the start with one line naming the key."""

import dataclasses
import ipaddress
import socket
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints


class ConfigError(Exception):
    """One line naming the key and what is wrong with it."""


@dataclass
class SmppConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    window: int = 50  # unanswered requests per client session; more → ESME_RTHROTTLED
    system_id: str = "smsc"  # ours, in bind responses
    max_pdu_size: int = 65536
    session_init_timer: float = 30.0
    enquire_link_timer: float = 30.0
    inactivity_timer: float = 300.0
    response_timer: float = 30.0
    # SMPP over TLS, on a port of its own beside the plain one (or alone: plain = false).
    tls_port: int | None = None  # 0: a free port (logged as "SMPP over TLS listening on …")
    tls_cert: str | None = None  # PEM file: our certificate, then its intermediates
    tls_key: str | None = None  # PEM file: its private key, not encrypted
    plain: bool = True  # false: no plain TCP listener on `port`, TLS only

    def __post_init__(self):
        _all_or_none(self, "tls_port", "tls_cert", "tls_key")
        if not self.plain and self.tls_port is None:
            raise ValueError("plain: false needs tls_port, tls_cert and tls_key")
        _between(self, 0, 65535, "port", "tls_port")
        _between(self, 1, 1 << 20, "window")
        _between(self, 512, 1 << 24, "max_pdu_size")  # a bind, a full submit_sm at least
        _at_least(self, 0.0, "session_init_timer", "enquire_link_timer", "inactivity_timer",
                  "response_timer")  # fmt: skip
        _longest(self, 15, "system_id")  # the C-octet string of bind_resp (spec 4.1)


@dataclass
class LimitsConfig:
    """Bind failures and connections (README, "Abuse and limits"). A count of 0: no limit."""

    bind_failures_per_id: int = 5  # failed binds of a system_id before it is locked out
    bind_failures_per_address: int = 50  # of a source address (many clients share one: NAT)
    lockout: float = 900.0  # seconds a lockout lasts; failures are counted over as long
    bind_delay: float = 1.0  # seconds a first failed bind waits for its answer, doubled after
    bind_delay_max: float = 10.0  # each further failure, up to this
    max_connections: int = 1000  # client connections open at once, all addresses together
    max_connections_per_address: int = 200  # from one address (an IPv6 /64 counts as one)

    def __post_init__(self):
        for key in ("bind_failures_per_id", "bind_failures_per_address", "max_connections",
                    "max_connections_per_address"):  # fmt: skip
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be 0 (no limit) or more")
        per_id, per_address = self.bind_failures_per_id, self.bind_failures_per_address
        if per_id and per_address and per_address < per_id:
            raise ValueError(
                "bind_failures_per_address: must be at least bind_failures_per_id (many "
                "clients share one address behind NAT)"
            )
        if self.lockout <= 0:
            raise ValueError("lockout: must be more than 0 seconds")
        if self.bind_delay < 0:
            raise ValueError("bind_delay: must be 0 (no delay) or more")
        if self.bind_delay_max < self.bind_delay:
            raise ValueError("bind_delay_max: must be at least bind_delay")


# The SQLite store's hot statements pass their IN lists through json_each (built in from 3.38)
# and read back what they wrote with RETURNING (3.35).
SQLITE_NEEDED = (3, 38, 0)


@dataclass
class StoreConfig:
    url: str = "sqlite:///smsc.db"
    # PostgreSQL (README, "Faults and shutdown"): seconds to open a connection, and that one
    # statement of the server may run (0: no limit); past them the work fails (a submit gets
    # ESME_RMSGQFUL) rather than hang.
    connect_timeout: int = 5
    statement_timeout: float = 10.0

    def __post_init__(self):
        backend, _, driver = self.url.partition(":")[0].partition("+")
        if backend not in ("sqlite", "postgresql") or "://" not in self.url:
            raise ValueError(  # not the URL itself: it may hold a password
                "url: not a store URL (sqlite:///FILE or postgresql+psycopg://USER@HOST/DB)"
            )
        if backend == "sqlite" and sqlite3.sqlite_version_info < SQLITE_NEEDED:
            raise ValueError(
                "url: the SQLite store needs SQLite 3.38 or newer; this Python's sqlite3 module "
                f"has {sqlite3.sqlite_version}"
            )
        if backend == "postgresql" and driver != "psycopg":
            raise ValueError("url: PostgreSQL is reached with psycopg: postgresql+psycopg://…")
        if self.connect_timeout < 2:  # libpq takes less than 2 s as 2
            raise ValueError("connect_timeout: must be at least 2 seconds")
        if self.statement_timeout < 0:
            raise ValueError("statement_timeout: must be 0 (no limit) or more")


@dataclass
class ShutdownConfig:
    """What SIGTERM (or SIGINT) does (README, "Faults and shutdown")."""

    timeout: float = 10.0  # seconds it may take at most; then, or at a second signal, exit now
    unbind_wait: float = 2.0  # seconds the clients and carriers get to answer our unbind

    def __post_init__(self):
        if self.timeout <= 0:
            raise ValueError("timeout: must be more than 0 seconds")
        if not 0 <= self.unbind_wait < self.timeout:
            raise ValueError("unbind_wait: must be 0 or more, and less than timeout")


@dataclass
class AccountConfig:
    """An account created at start when missing (the demo's); never changed when present."""

    system_id: str
    password: str


@dataclass
class SimulatorConfig:
    """How a carrier with `simulate = true` behaves (see `smsc carrier-sim --help`)."""

    id_format: str = "hex"  # its message ids: "hex" or "dec"
    receipt_id_format: str = ""  # the ids in its receipts: "hex", "dec", "" = as id_format
    receipt_tlvs: bool = True  # false: receipts carry only the appendix B text
    dlr_delay: float = 1.0  # seconds before it sends a receipt
    fail_rate: float = 0.0  # share of messages it reports UNDELIV
    lose_rate: float = 0.0  # share of the receipts asked for that it never sends
    tps: int = 0  # above this it answers ESME_RTHROTTLED; 0 = no limit
    control_port: int = 0  # its HTTP control endpoint on loopback; 0 = none
    # PEM files it presents when its carrier has tls = true.
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self):
        _all_or_none(self, "tls_cert", "tls_key")
        _one_of("id_format", self.id_format, ("hex", "dec"))
        _one_of("receipt_id_format", self.receipt_id_format, ("hex", "dec", ""))
        for name in ("fail_rate", "lose_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be between 0 and 1")
        _at_least(self, 0, "dlr_delay", "tps")
        _between(self, 0, 65535, "control_port")


@dataclass
class CarrierConfig:
    name: str
    host: str = "127.0.0.1"
    port: int = 2776
    system_id: str = "switch"
    password: str = "secret"
    system_type: str = ""
    binds: int = 1  # parallel transceiver binds
    window: int = 10  # outstanding submit_sm per bind
    tps: int = 100  # messages (parts) per second for the carrier as a whole
    prefixes: list[str] = field(default_factory=list)  # E.164 prefixes it takes by default
    priority: int = 1  # failover order among carriers that can take a number, lowest first
    long_messages: str = "udh"  # how it takes long texts: "udh", "sar" or "payload"
    simulate: bool = False  # start a simulated carrier on host:port in this process
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    tls: bool = False  # connect over TLS (see smsc/tls.py)
    tls_ca: str | None = None  # PEM file of the CAs to trust; absent: the system's trust store
    tls_verify: bool = True  # false: any certificate for any name is taken (test labs only)

    def __post_init__(self):
        if not self.name or not self.name.isidentifier():
            raise ValueError("name: letters, digits and _ only")
        if not self.tls and self.tls_ca is not None:
            raise ValueError("tls_ca: needs tls = true")
        if not self.tls and not self.tls_verify:
            raise ValueError("tls_verify: needs tls = true")
        if self.simulator.tls_cert is not None and not (self.simulate and self.tls):
            raise ValueError("simulator.tls_cert: needs simulate = true and tls = true")
        if self.simulate and self.tls and self.simulator.tls_cert is None:
            raise ValueError("simulator.tls_cert: required with simulate = true and tls = true")
        _one_of("long_messages", self.long_messages, ("udh", "sar", "payload"))
        for key in ("binds", "window", "tps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be at least 1")
        for prefix in self.prefixes:
            if not prefix.isdigit():
                raise ValueError(f"prefixes: {prefix!r} is not E.164 digits")
        _between(self, 1, 65535, "port")
        _longest(self, 15, "system_id")  # the C-octet strings of bind (spec 4.1)
        _longest(self, 8, "password")
        _longest(self, 12, "system_type")


@dataclass
class RoutingConfig:
    default: list[str] = field(default_factory=list)  # carriers tried for unmatched numbers


@dataclass
class QueueConfig:
    claim_batch: int = 500  # most messages the dispatcher claims at once
    retry_delay: float = 10.0  # seconds before a message put back in the queue is due again
    outbox_retention: float = 72 * 3600.0  # seconds a receipt waits for its client to bind
    outbox_retry: float = 30.0  # seconds before a deliver_sm that failed is tried again
    # Seconds a message sent waits for its carrier's final receipt before it ends UNKNOWN
    # (with a receipt for its client when it asked); 0: it waits for ever.
    receipt_timeout: float = 72 * 3600.0

    def __post_init__(self):
        _at_least(self, 1, "claim_batch")
        _at_least(self, 0.0, "retry_delay", "outbox_retry", "receipt_timeout")
        if self.outbox_retention <= 0:
            raise ValueError("outbox_retention: must be more than 0 seconds")


@dataclass
class OptoutConfig:
    """The opt-out list (`smsc blacklist`, subscribers' STOP)."""

    # The HMAC key numbers are hashed under; when absent, one is generated once and kept in the
    # store. Changing it makes every entry hashed under the old key unrecognisable.
    hash_key: str | None = None
    retention_days: int = 1095  # an entry is forgotten this long after its last STOP (CNIL: 3y)

    def __post_init__(self):
        if self.hash_key is not None and not self.hash_key:
            raise ValueError("hash_key: must not be empty (leave it out to use a generated key)")
        if self.retention_days < 1:
            raise ValueError("retention_days: must be at least 1")


@dataclass
class RetentionConfig:
    """How long what finished messages said, and to whom, is kept (smsc/store/retention.py)."""

    # Days after a message ended (and its receipt was made) that its text and numbers are
    # purged, by `smsc db purge` and by the server once a day; 0: kept for ever.
    messages_days: int = 90

    def __post_init__(self):
        if self.messages_days < 0:
            raise ValueError("messages_days: must be 0 (keep) or more")


@dataclass
class MetricsConfig:
    """`/metrics`, `/healthz` and `/status` over HTTP; no `[metrics]` section: no listener."""

    host: str = "127.0.0.1"
    port: int = 9100  # 0: a free port (logged as "metrics listening on HOST:PORT")

    def __post_init__(self):
        _between(self, 0, 65535, "port")


@dataclass
class HttpConfig:
    """The HTTP API (`/api/v1/`) and the web page (`/`); no `[http]` section: no listener."""

    host: str = "127.0.0.1"
    port: int = 8080  # 0: a free port (logged as "HTTP listening on HOST:PORT")
    # The switch's own address as its users reach it (behind a proxy), for links in the page
    # and the OpenAPI document; empty: the Host header of each request.
    public_url: str = ""
    callback_timeout: float = 10.0  # seconds a receipt callback may take before a retry
    callback_retry_max: float = 3600.0  # seconds: the longest wait between two tries
    # Callbacks reach public addresses only, and these networks besides (CIDRs).
    callback_networks: list[str] = field(default_factory=list)

    def __post_init__(self):
        _between(self, 0, 65535, "port")
        if self.callback_timeout <= 0 or self.callback_retry_max <= 0:
            raise ValueError("callback_timeout, callback_retry_max: must be more than 0 seconds")
        for cidr in self.callback_networks:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"callback_networks: {cidr!r} is not a network") from None


@dataclass
class SmtpConfig:
    """Email to SMS; no `[smtp]` section: no listener."""

    host: str = "127.0.0.1"
    port: int = 2525  # 0: a free port (logged as "SMTP listening on HOST:PORT")
    domain: str = "sms.example.com"  # mail to <number>@<domain> becomes an SMS
    # Where the results mailed back to senders go out (a local MTA or the provider's relay);
    # relay_port 0: no mail goes out (senders asking for results are told so at start).
    relay_host: str = "127.0.0.1"
    relay_port: int = 25
    mail_from: str = ""  # the From of the results; empty: smsc@<domain>
    max_size: int = 1_000_000  # octets: a bigger mail is refused at DATA
    # STARTTLS (RFC 3207) offered with these PEM files (as [smpp]'s); tls_required: no MAIL
    # FROM before it (530 5.7.0).
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_required: bool = False

    def __post_init__(self):
        _between(self, 0, 65535, "port", "relay_port")
        _all_or_none(self, "tls_cert", "tls_key")
        if self.tls_required and self.tls_cert is None:
            raise ValueError("tls_required: needs tls_cert and tls_key")
        if not self.domain or "@" in self.domain:
            raise ValueError("domain: a domain name, like sms.example.com")
        if self.max_size < 1000:
            raise ValueError("max_size: 1000 octets at least")


@dataclass
class ClusterConfig:
    """This node among the nodes sharing one store (PostgreSQL; a SQLite store serves one)."""

    node: str = field(default_factory=lambda: socket.gethostname()[:64])  # unique per node
    heartbeat: float = 2.0  # seconds between heartbeats
    lease: float = 10.0  # seconds without a heartbeat before the others take over its work

    def __post_init__(self):
        if not self.node or len(self.node) > 64:
            raise ValueError("node: 1 to 64 characters")
        if self.heartbeat <= 0:
            raise ValueError("heartbeat: must be more than 0 seconds")
        if not 0 < self.heartbeat * 3 <= self.lease:
            raise ValueError("lease: must be at least three heartbeats")


@dataclass
class LoggingConfig:
    """What `smsc serve` writes on stdout (see smsc/logs.py)."""

    format: str = "text"  # "text": one line per event; "json": one JSON object per line
    level: str = "info"  # debug, info, warn, error, critical
    reveal: bool = False  # with level = "debug": DEBUG lines show numbers and texts in clear

    def __post_init__(self):
        _one_of("format", self.format, ("text", "json"))
        _one_of("level", self.level, ("debug", "info", "warn", "error", "critical"))


@dataclass
class Config:
    smpp: SmppConfig = field(default_factory=SmppConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    accounts: list[AccountConfig] = field(default_factory=list)
    carriers: list[CarrierConfig] = field(default_factory=list)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    optout: OptoutConfig = field(default_factory=OptoutConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    metrics: MetricsConfig | None = None
    http: HttpConfig | None = None
    smtp: SmtpConfig | None = None

    def __post_init__(self):
        names = [c.name for c in self.carriers]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"carriers[{i}].name: {name} is named twice")
        for name in self.routing.default:
            if name not in names:
                raise ValueError(f"routing.default: no carrier named {name}")


def _all_or_none(section: Any, *keys: str) -> None:
    """Keys that work only together (a TLS listener's port, certificate and key)."""
    given = [k for k in keys if getattr(section, k) is not None]
    if given and len(given) < len(keys):
        missing = next(k for k in keys if k not in given)
        raise ValueError(f"{missing}: required with {given[0]}")


def _between(section: Any, low: int, high: int, *keys: str) -> None:
    for key in keys:
        value = getattr(section, key)
        if value is not None and not low <= value <= high:
            raise ValueError(f"{key}: must be between {low} and {high}, not {value}")


def _at_least(section: Any, low: float, *keys: str) -> None:
    for key in keys:
        value = getattr(section, key)
        if value < low:
            raise ValueError(f"{key}: must be {low:g} or more, not {value:g}")


def _longest(section: Any, most: int, *keys: str) -> None:
    for key in keys:
        if len(getattr(section, key)) > most:
            raise ValueError(f"{key}: at most {most} characters")


def _one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key}: must be one of {', '.join(choices)}, not {value!r}")


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return _build(Config, raw, "")


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a table")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        name = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"{name}: unknown key")
        values[key] = _convert(hints[key], value, name)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: required")
    try:
        return cls(**values)
    except ValueError as e:  # a value checked by the class itself; it names its key
        raise ConfigError(f"{where}.{e}" if where else str(e)) from None


def _convert(hint: Any, value: Any, name: str) -> Any:
    if get_origin(hint) is UnionType:
        hint = next(a for a in get_args(hint) if a is not type(None))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name)
    origin = get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list")
        (item,) = get_args(hint)
        return [_convert(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{name}: expected {hint.__name__}, got {type(value).__name__}")
    return value
