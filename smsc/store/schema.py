"""The tables (SQLAlchemy Core). Alembic migrations in `migrations/` create and change them;
this module is what the code reads, and must match the newest migration (a test checks)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    SmallInteger,
    String,
    Table,
    text,
)

metadata = MetaData()
CHARTER_HOURS = "mon-sat 08:00-21:30"  # the French operators' business messaging charter
_ID = BigInteger().with_variant(Integer, "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("system_id", String(15), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("max_binds", Integer, nullable=False),
    Column("tps", Integer, nullable=False),  # submits per second, 0 = no cap
    Column("enabled", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    # Promotional traffic is held outside its sending hours; transactional is not.
    Column("marketing", Boolean, nullable=False, server_default="0"),
    Column("sending_hours", String(200), nullable=False, server_default=CHARTER_HOURS),
    Column("timezone", String(64), nullable=False, server_default="Europe/Paris"),
    Column("holidays", String(8), nullable=False, server_default="fr"),
    # Seconds a message is tried from its due time: when the client gives no validity, and
    # at most.
    Column("default_validity", Integer, nullable=False, server_default="172800"),
    Column("max_validity", Integer, nullable=False, server_default="604800"),
    # Who the account is, for the CONTACT reply.
    Column("company", String(160), nullable=False, server_default=text("''")),
    Column("contact", String(160), nullable=False, server_default=text("''")),
    Column("website", String(160), nullable=False, server_default=text("''")),
    # 06/07 mobile numbers as senders (refused by default: ARCEP 2022-1583).
    Column("mobile_senders", Boolean, nullable=False, server_default="0"),
    # A promotional message from an alphanumeric sender without "STOP au 36xxx":
    # "append" the mention, or "refuse" the message.
    Column("stop_mention", String(8), nullable=False, server_default="append"),
    # Credit, in thousandths of a credit (smsc.store.credit): a prepaid account cannot spend
    # below 0, a postpaid one goes below 0 by what it used. Always the sum of its ledger.
    Column("prepaid", Boolean, nullable=False, server_default="0"),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("low_balance", BigInteger, nullable=False, server_default="0"),  # 0: no alert
    # Refunded besides what is cancelled before it leaves (always refunded).
    Column("refund_expired", Boolean, nullable=False, server_default="1"),
    Column("refund_rejected", Boolean, nullable=False, server_default="1"),
    # The networks it may bind from, CIDRs separated by spaces; empty: anywhere.
    Column("networks", String(2000), nullable=False, server_default=text("''")),
    # Where its subscribers' replies are POSTed as JSON (its HTTP clients); empty: deliver_sm
    # to its SMPP receiver binds.
    Column("reply_url", String(500), nullable=False, server_default=text("''")),
)

# The addresses an account sends from; a shared short code has a row per account.
senders = Table(
    "senders",
    metadata,
    Column("address", String(20), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Index("senders_account", "account_id"),
)

# The opt-out list: keyed hashes of E.164 numbers, never the numbers. scope 0 is the global
# list an admin keeps, else the account's id.
optouts = Table(
    "optouts",
    metadata,
    Column("number_hash", LargeBinary(32), primary_key=True),
    Column("scope", Integer, primary_key=True),
    Column("origin", String(8), nullable=False),  # stop, admin, import
    Column("created_at", Float, nullable=False),
    Index("optouts_created", "created_at"),
)

# Values the switch keeps for itself (the opt-out hash key when the config gives none).
settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

# The parts of subscribers' long replies, until the last one comes.
inbox_parts = Table(
    "inbox_parts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("carrier", String(32), nullable=False),
    Column("source", String(20), nullable=False),
    Column("destination", String(20), nullable=False),
    Column("ref", Integer, nullable=False),
    Column("total", SmallInteger, nullable=False),
    Column("seq", SmallInteger, nullable=False),
    Column("data_coding", SmallInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("inbox_parts_message", "source", "destination", "ref"),
)

# Message ids on PostgreSQL: each node's writer takes a block of BLOCK at a time (SQLite has
# one node, whose writer counts on its own).
ID_BLOCK = 1024
message_ids = Sequence("message_ids", increment=ID_BLOCK, metadata=metadata)

# One row per message and destination: the queue itself (state, due_at) and its history.
messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("service_type", String(5), nullable=False),
    Column("source_ton", SmallInteger, nullable=False),
    Column("source_npi", SmallInteger, nullable=False),
    Column("source", String(20), nullable=False),
    Column("destination", String(15), nullable=False),  # E.164 digits
    Column("esm_class", SmallInteger, nullable=False),
    Column("protocol_id", SmallInteger, nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("registered_delivery", SmallInteger, nullable=False),
    Column("data_coding", SmallInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),  # short_message or message_payload, UDH incl.
    Column("tlvs", LargeBinary, nullable=False),  # other optional parameters, passed on as is
    Column("submitted_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("state", String(13), nullable=False),
    Column("updated_at", Float, nullable=False),
    # The id a submit_multi answered with, shared by its rows (the first row's id); NULL for
    # a message submitted alone.
    Column("multi_id", BigInteger().with_variant(Integer, "sqlite")),
    Column("carrier", String(32)),  # the carrier it went to, last time it went
    Column("attempts", SmallInteger, nullable=False, server_default="0"),
    Column("error", Integer),  # the carrier's status or receipt error code, when it failed
    Column("origin", SmallInteger, nullable=False, server_default="0"),  # 0 a client, 1 the switch
    Column("node_id", Integer),  # the node that claimed it last
    # Where its receipt goes when it came through another channel than SMPP: an HTTP(S)
    # callback URL, or mailto:ADDRESS (smsc.channels); None: a deliver_sm to its account.
    Column("callback", String(500)),
    Index("messages_queue", "state", "account_id", "due_at"),
    Index("messages_account_destination", "account_id", "destination"),
    Index(
        "messages_multi",
        "multi_id",
        sqlite_where=text("multi_id IS NOT NULL"),
        postgresql_where=text("multi_id IS NOT NULL"),
    ),  # fmt: skip
)


# The parts of a message as sent to a carrier, with the carrier's id for each: what its
# receipts are matched against. Short messages have one part.
message_parts = Table(
    "message_parts",
    metadata,
    Column("message_id", _ID, ForeignKey("messages.id"), primary_key=True),
    Column("seq", SmallInteger, primary_key=True),  # 1 to the number of parts
    Column("carrier", String(32), nullable=False),
    Column("carrier_id", String(64), nullable=False),  # normalised: lower case, no leading 0
    Column("state", String(13), nullable=False),
    Column("sent_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("message_parts_carrier_id", "carrier", "carrier_id"),
)

# What waits to be sent to a client as deliver_sm (receipts, replies): sent to a receiver or
# transceiver bind of the account, retried until deliver_sm_resp, kept while it is not bound.
outbox = Table(
    "outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("message_id", _ID),  # the message a receipt is about
    Column("source_ton", SmallInteger, nullable=False),
    Column("source_npi", SmallInteger, nullable=False),
    Column("source", String(20), nullable=False),
    Column("destination", String(20), nullable=False),
    Column("esm_class", SmallInteger, nullable=False),
    Column("data_coding", SmallInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("tlvs", LargeBinary, nullable=False),
    Column("state", String(10), nullable=False),  # PENDING, SENDING, DONE, EXPIRED
    Column("attempts", SmallInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("node_id", Integer),  # the node that claimed it last
    # Where a channel other than SMPP takes it (an HTTP callback, or mailto:); None: deliver_sm.
    Column("url", String(500)),
    Index("outbox_queue", "state", "account_id", "due_at"),
)

# Routes added by an admin (`smsc route add`), beside the carriers' configured prefixes.
routes = Table(
    "routes",
    metadata,
    Column("prefix", String(15), primary_key=True),
    Column("carrier", String(32), primary_key=True),
    Column("priority", Integer, nullable=False),
)

# Number portability (`smsc mnp import`): the carrier that really serves a number.
mnp = Table(
    "mnp",
    metadata,
    Column("number", String(15), primary_key=True),
    Column("carrier", String(32), nullable=False),
)

# The smsc processes serving this store. Each beats its heartbeat; what a node claimed (rows
# SENDING with its node_id) goes back to the queue once its heartbeat is older than the lease.
nodes = Table(
    "nodes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

# Slots of a limit the cluster shares, each held by one node until it gives it back or its
# lease runs out: a carrier's binds (kind "carrier", key its name), an account's binds
# ("account", its id).
leases = Table(
    "leases",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("node_id", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("leases_node", "node_id"),
)

# Every movement of an account's credit, never changed once written: top-ups, charges at
# accept, refunds, adjustments when replace_sm changes a message's price. A message is charged
# and refunded at most once (the unique index).
ledger = Table(
    "ledger",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(8), nullable=False),  # topup, charge, refund, adjust
    Column("amount", BigInteger, nullable=False),  # thousandths of a credit, signed
    Column("message_id", _ID),
    Column("note", String(200), nullable=False, server_default=text("''")),
    Index("ledger_account", "account_id", "at"),
    Index(
        "ledger_message",
        "message_id",
        "kind",
        unique=True,
        sqlite_where=text("kind IN ('charge', 'refund')"),
        postgresql_where=text("kind IN ('charge', 'refund')"),
    ),
)

# The price of a part by destination prefix, longest match first; the empty prefix is the
# default (1 credit when there is no row at all).
tariffs = Table(
    "tariffs",
    metadata,
    Column("prefix", String(15), primary_key=True),
    Column("price", BigInteger, nullable=False),  # thousandths of a credit a part
)

# Binds refused without a password check until `until` (smsc.limits): a system_id ("account")
# or a source address ("address": an IPv4 address, or the /64 of an IPv6 one) that failed too
# many binds. Nodes write one when it starts and read them all every few seconds; lifting one
# (`smsc lockout lift`) deletes its row.
lockouts = Table(
    "lockouts",
    metadata,
    Column("kind", String(8), primary_key=True),  # account, address
    Column("key", String(64), primary_key=True),
    Column("since", Float, nullable=False),
    Column("until", Float, nullable=False),
    Column("failures", Integer, nullable=False),  # the failed binds that started it
)

# The HTTP API's bearer tokens (`smsc account token`): only a hash of each is kept, so a copy
# of the store gives none away. A token is 32 random bytes: SHA-256 is enough, no slow KDF.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("label", String(64), nullable=False, server_default=text("''")),
    Column("created_at", Float, nullable=False),
)

# The email addresses that may send SMS for an account (`smsc account email`), lower case.
# `reports`: the account asked for the results (refusals, receipts) by email.
mail_senders = Table(
    "mail_senders",
    metadata,
    Column("address", String(254), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("reports", Boolean, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
)
