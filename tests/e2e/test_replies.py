"""Subscribers' replies end to end (issue 5): the real `smsc serve` with two simulated carriers
inside it, subscribers' messages injected with their control endpoints (POST /mo), `smpplib`
clients. STOP in many forms opts the subscriber out of the account the reply is for (a
confirmation goes back, later submits are refused with 0x401), and the store keeps no opted-out
number in clear; CONTACT answers with the account's identity; a shared short code's replies go
to the account that last messaged the subscriber; ordinary replies wait for a bind and arrive
whole; the sender rules at accept (registered senders, 06/07 numbers, "STOP au 36xxx", in
the last part of a long message); `smsc blacklist add/remove`; replies to a long number the
client wrote in national form; STOP confirmed when sending hours are closed, and what was
queued before a STOP.

Carriers: "alpha" takes 3360005xxxx, "beta" 3360006xxxx (fictional numbers). Each test uses
accounts and numbers of its own, so that nothing mixes between tests.
"""

import struct
import time

import pytest
import smpplib.client
import smpplib.smpp

pytestmark = pytest.mark.e2e

ROK, RINVSRCADR, ROPTEDOUT, RSTOPMENTION = 0x00, 0x0A, 0x401, 0x402
PREFIXES = {"alpha": "3360005", "beta": "3360006"}

# Accounts made with `smsc account add` (system_id -> its options; password: the system_id's
# first 8 letters), and accounts of the config that need nothing else: no sender registered, so
# they may send from any valid one but 06/07, and replies to what they send from are theirs as
# the last to send to the subscriber from it.
ADDED = {
    "stopper": ["--sender", "36180", "--company", "Stopper SA", "--website", "stopper.example"],
    "shop1": ["--sender", "36190", "--company", "Shop One"],
    "shop2": ["--sender", "36190", "--company", "Shop Two"],
    "rules": ["--sender", "38100", "--sender", "RULES"],
    "promo": ["--sender", "PROMO", "--sender", "36192", "--stop-mention", "refuse"],
    "promolong": ["--sender", "LONGPROMO", "--sender", "36194"],
    "night": ["--sender", "36195"],
}
CONFIGURED = ["acme", "later", "longs", "mobile", "black", "platform", "sched"]
# Promotional, with sending hours that are always open (the test runs any day, any time), or
# that never open.
PROMO = ["--marketing", "--sending-hours", "mon-sun 00:00-24:00", "--holidays", "none"]
PROMOTIONAL = {
    "promo": PROMO,
    "promolong": PROMO,
    "night": ["--marketing", "--sending-hours", "never"],
}


def subscriber(carrier: str, n: int) -> str:
    return f"{PREFIXES[carrier]}{n:04d}"


def eventually(check, what: str, timeout: float = 10.0):
    """What `check()` returns once it is true (polled), or fail saying `what` did not come."""
    end = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < end, f"not after {timeout} s: {what}"
        time.sleep(0.05)
    return value


# -- the switch and its carriers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server(smsc_factory, free_ports, sim_control):
    ports = iter(free_ports(2 * len(PREFIXES)))
    carriers, sims = [], {}
    for name, prefix in PREFIXES.items():
        port, control_port = next(ports), next(ports)
        carriers.append(
            {"name": name, "port": port, "prefixes": [prefix], "simulate": True,
             "simulator": {"dlr_delay": 0.1, "control_port": control_port}}
        )  # fmt: skip
        sims[name] = sim_control(control_port)
    switch = smsc_factory(
        config={
            "accounts": [{"system_id": a, "password": a[:8]} for a in CONFIGURED],
            "carriers": carriers,
            "queue": {"retry_delay": 0.5, "outbox_retry": 1.0},
        },
        start=False,
    )
    switch.cli_parallel(
        *(["account", "add", a, "--password", a[:8], *opts] for a, opts in ADDED.items())
    )
    switch.cli_parallel(*(["account", "set", a, *opts] for a, opts in PROMOTIONAL.items()))
    switch.start()
    switch.sims = sims
    for name, sim in sims.items():
        eventually(lambda s=sim: s.stats()["binds"]["transceiver"], f"{name} bound")
    return switch


def carrier_of(number: str) -> str:
    return next(name for name, prefix in PREFIXES.items() if number.startswith(prefix))


def inject(server, source: str, to: str, text: str, coding: str | None = None) -> int:
    """A subscriber's message, sent by the carrier serving `source`; the number of parts."""
    return server.sims[carrier_of(source)].mo(source, to, text, coding)


def received(server, number: str, source: str | None = None) -> list[str]:
    """The texts of the submits the carrier of `number` took for it (from `source`)."""
    records = server.sims[carrier_of(number)].received()
    return [
        r["text"] for r in records if r["destination"] == number and source in (None, r["source"])
    ]


def wait_received(server, number: str, count: int, source: str | None = None) -> list[str]:
    """`received(…)` once it holds `count` texts (at least)."""
    return eventually(
        lambda: (texts := received(server, number, source))[count - 1 :] and texts,
        f"{count} message(s) to {number} at the carrier",
    )


# -- clients -----------------------------------------------------------------------------------


def _source_ton(address: str) -> tuple[int, int]:
    """(TON, NPI) of a sender: alphanumeric, international number, or short code."""
    if not address.isdigit():
        return 5, 0
    if address.startswith("0"):
        return 2, 1  # national: 0937123456
    return (1, 1) if len(address) >= 8 else (0, 0)


def text_of(pdu) -> str:
    """The text of a deliver_sm, decoded by hand (GSM texts here are plain ASCII)."""
    data = pdu.short_message or getattr(pdu, "message_payload", None) or b""
    return data.decode("utf-16-be" if pdu.data_coding == 8 else "ascii")


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Esme:
    """An smpplib client of the switch. While it waits for its own answers it answers the
    switch's deliver_sm (kept in `inbox`) and enquire_link."""

    def __init__(self, client: smpplib.client.Client):
        self.client = client
        self.inbox: list = []

    def _answer(self, pdu) -> None:
        resp = smpplib.smpp.make_pdu(f"{pdu.command}_resp", client=self.client)
        resp.sequence = pdu.sequence
        self.client.send_pdu(resp)

    def read(self, timeout: float):
        """The next answer to one of our requests; None when none came within `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.client._socket.settimeout(left)
            try:
                pdu = self.client.read_pdu()
            except TimeoutError:
                return None
            if pdu.command not in ("deliver_sm", "enquire_link"):
                return pdu
            if pdu.command == "deliver_sm":
                self.inbox.append(pdu)
            self._answer(pdu)
        return None

    def submit(
        self,
        source: str,
        destination: str,
        text: str | bytes = "Bonjour",
        *,
        dest_ton: int = 1,
        esm_class: int = 0,
        **more,
    ) -> int:
        """submit_sm; its command_status (smpplib hands error answers back as PDUs). A str
        goes as GSM when it is ASCII, else UCS-2; bytes as they are, in GSM. `more`: other
        submit_sm fields."""
        ton, npi = _source_ton(source)
        body, coding = text, 0
        if isinstance(text, str):
            coding = 0 if text.isascii() else 8
            body = text.encode("ascii" if coding == 0 else "utf-16-be")
        request = self.client.send_message(
            source_addr_ton=ton, source_addr_npi=npi, source_addr=source,
            dest_addr_ton=dest_ton, dest_addr_npi=1, destination_addr=destination,
            esm_class=esm_class, data_coding=coding, short_message=body, **more,
        )  # fmt: skip
        resp = self.read(10)
        assert resp is not None, f"no answer to the submit to {destination}"
        assert (resp.command, resp.sequence) == ("submit_sm_resp", request.sequence), resp
        return resp.status

    def replies(self, count: int, timeout: float = 10.0) -> list[tuple[str, str, str]]:
        """The first `count` deliver_sm as (source, destination, text), once they came."""
        deadline = time.monotonic() + timeout
        while len(self.inbox) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(self.inbox)} deliver_sm of {count} after {timeout} s"
            self.read(min(left, 0.2))
        return [(_s(p.source_addr), _s(p.destination_addr), text_of(p)) for p in self.inbox]


def bind(server, system_id: str, mode: str = "transceiver", client=None) -> Esme:
    if client is None:
        client = smpplib.client.Client(*server.address, timeout=5, allow_unknown_opt_params=True)
        client.connect()
    getattr(client, f"bind_{mode}")(system_id=system_id, password=system_id[:8])
    return Esme(client)


@pytest.fixture
def esme(smpplib_client):
    """`esme(server, system_id, mode="transceiver") -> Esme`, bound; closed after the test."""
    return lambda server, system_id, mode="transceiver": bind(
        server, system_id, mode, smpplib_client(server)
    )


# -- 1. STOP in many forms ---------------------------------------------------------------------

LONG_STOP = (
    "Bonjour, je ne souhaite plus recevoir vos messages publicitaires, merci de me retirer de "
    "votre liste de diffusion des aujourd'hui et de ne plus m'ecrire. Cordialement. STOP"
)
assert len(LONG_STOP) > 160  # two parts
# (text, coding of the subscriber's phone): GSM 03.38, or UCS-2 when the text needs it or the
# phone chose it.
STOPS = [
    ("STOP", "gsm"), ("stop", "gsm"), ("Stop!", "gsm"), ("STOP SMS", "gsm"),
    ("stop svp", "gsm"), ("STOP 36180", "gsm"), ("STOP36180", "gsm"), ("ARRET", "gsm"),
    ("ARRÊT", "ucs2"), ("arrêtez", "ucs2"), ("Stop merci", "ucs2"), ("STOPPER", "gsm"),
    ("S T O P", "gsm"), ("stop.", "gsm"), ("je ne veux plus, stop", "gsm"),
    ("STOP au 36180", "ucs2"), ("désabonner", "gsm"), ("Arrêt svp", "ucs2"), ("s.t.o.p", "gsm"),
    (" Stop ", "gsm"), ("Merci de stopper les envois", "gsm"), ("Désabonnez-moi", "ucs2"),
    ("désinscription", "ucs2"), ("Stop c’est trop", "ucs2"), ("STOP 🙏", "ucs2"),
    ("STOP", "ucs2"), (LONG_STOP, "gsm"),
]  # fmt: skip
STOP_CODE = "36180"


def confirms_stop(text: str) -> bool:
    """A confirmation of an opt-out ("désinscription prise en compte")."""
    return "desinscription" in text.lower().replace("é", "e")


FIRST_TEXT = "Stopper SA: -20% sur tout le magasin ce week-end"


@pytest.fixture(scope="module")
def stopped(server):
    """The numbers that replied STOP to 36180 (one per form, on both carriers), each after a
    message from "stopper"; returned once every confirmation reached its carrier."""
    numbers = [subscriber(("alpha", "beta")[i % 2], 100 + i) for i in range(len(STOPS))]
    client = bind(server, "stopper")
    try:
        for number in numbers:
            assert client.submit(STOP_CODE, number, FIRST_TEXT) == ROK
        for number in numbers:
            wait_received(server, number, 1)
        for number, (text, coding) in zip(numbers, STOPS, strict=True):
            inject(server, number, STOP_CODE, text, coding)

        def confirmed():
            return all(len(received(server, n, STOP_CODE)) == 2 for n in numbers)

        eventually(confirmed, "a confirmation for each STOP")
    finally:
        client.client.disconnect()
    return numbers


def test_stop_confirmed_without_promotion(server, stopped):
    for number, (text, _) in zip(stopped, STOPS, strict=True):
        first, confirmation = received(server, number, STOP_CODE)
        assert first == FIRST_TEXT
        assert confirms_stop(confirmation), (text, confirmation)
        assert "Stopper SA" in confirmation  # who it is from
        for promotion in ("%", "http", "www", "stopper.example", "STOP au"):
            assert promotion not in confirmation, (text, confirmation)
    assert server.query("SELECT count(*) FROM inbox_parts") == [(0,)]  # the long one assembled


def test_opted_out_numbers_refused_by_submit_sm(server, stopped, esme):
    client = esme(server, "stopper", "transmitter")
    refused = {n: client.submit(STOP_CODE, n, "Encore une offre") for n in stopped}
    assert refused == dict.fromkeys(stopped, ROPTEDOUT)
    # Whatever form the client writes the number in.
    assert client.submit(STOP_CODE, "0" + stopped[0][2:], "Offre", dest_ton=2) == ROPTEDOUT
    assert client.submit(STOP_CODE, "+" + stopped[1], "Offre", dest_ton=1) == ROPTEDOUT
    assert client.submit(STOP_CODE, "00" + stopped[2], "Offre", dest_ton=0) == ROPTEDOUT
    # The account's own list: another account may still send to them.
    other = esme(server, "black", "transmitter")
    assert other.submit("38999", stopped[0], "Votre code: 1234") == ROK


def _c(value: str) -> bytes:
    return value.encode("ascii") + b"\0"


def submit_multi_body(source: str, destinations: list[str], text: bytes) -> bytes:
    """A submit_multi to numbers (spec 4.5.1), by hand: smpplib does not send one."""
    dests = b"".join(b"\x01\x01\x01" + _c(d) for d in destinations)
    return (
        _c("") + bytes((0, 0)) + _c(source) + bytes((len(destinations),)) + dests
        + bytes((0, 0, 0)) + _c("") + _c("") + bytes((0, 0, 0, 0, len(text))) + text
    )  # fmt: skip


def read_unsuccess(body: bytes) -> tuple[str, list[tuple[str, int]]]:
    """submit_multi_resp: (message_id, [(address, error status)])."""
    end = body.index(b"\0")
    message_id, pos, unsuccess = body[:end].decode(), end + 2, []
    for _ in range(body[end + 1] if end + 1 < len(body) else 0):
        end = body.index(b"\0", pos + 2)  # after the address's TON and NPI
        address = body[pos + 2 : end].decode()
        unsuccess.append((address, struct.unpack_from(">I", body, end + 1)[0]))
        pos = end + 5
    assert pos >= len(body), f"trailing octets: {body[pos:]!r}"
    return message_id, unsuccess


def test_opted_out_numbers_listed_in_submit_multi(server, stopped, raw_client):
    raw = raw_client(server)
    assert raw.bind("transmitter", "stopper", "stopper").status == ROK
    fresh = [subscriber("alpha", 190), subscriber("beta", 191)]
    destinations = [stopped[0], fresh[0], stopped[1], fresh[1], stopped[-1]]
    answer = raw.call(0x21, submit_multi_body(STOP_CODE, destinations, b"Offre multi"))
    assert (answer.command_id, answer.status) == (0x80000021, ROK)
    message_id, unsuccess = read_unsuccess(answer.body)
    assert message_id
    assert sorted(unsuccess) == sorted((n, ROPTEDOUT) for n in stopped[:2] + stopped[-1:])
    for number in fresh:
        eventually(lambda n=number: received(server, n) == ["Offre multi"], f"{number} sent to")


# -- 2. no opted-out number in clear -----------------------------------------------------------

HISTORY = {"messages", "message_parts", "outbox"}  # what was sent: numbers by necessity


def _forms(number: str) -> list[bytes]:
    """How a number could sit in a column: E.164, +E.164, national; text, UTF-16, hex."""
    texts = [number, "+" + number, "0" + number[2:]]
    forms = [t.encode() for t in texts] + [t.encode("utf-16-be") for t in texts]
    return forms + [f.hex().encode() for f in forms]


def test_store_keeps_no_opted_out_number_in_clear(server, stopped):
    forms = {n: _forms(n) for n in stopped}
    tables = server.tables()
    assert {"optouts", "settings", "inbox_parts"} <= set(tables)
    found: dict[str, set[str]] = {}
    for table in tables:
        for row in server.query(f'SELECT * FROM "{table}"'):
            for value in row:
                data = value if isinstance(value, bytes) else str(value).encode()
                for number, variants in forms.items():
                    if any(v in data for v in variants):
                        found.setdefault(table, set()).add(number)
    assert set(found) <= HISTORY, {t: sorted(n) for t, n in found.items() if t not in HISTORY}
    # The opt-outs are there, as hashes: one entry of "stopper" per number.
    (account,) = server.query("SELECT id FROM accounts WHERE system_id = 'stopper'")
    rows = server.query("SELECT number_hash, origin FROM optouts WHERE scope = ?", account)
    assert len(rows) == len(stopped) and {origin for _, origin in rows} == {"stop"}


# -- 3. CONTACT --------------------------------------------------------------------------------


def test_contact_answers_with_the_identity(server, esme):
    server.cli(
        "account", "set", "acme", "--company", "ACME SAS", "--contact", "01 23 45 67 89",
        "--website", "acme.example",
    )  # fmt: skip
    client = esme(server, "acme", "transmitter")
    asking = [
        (subscriber("alpha", 200), "CONTACT", "gsm"),
        (subscriber("beta", 201), "Contact ?", "ucs2"),
    ]
    for number, text, coding in asking:
        assert client.submit("36181", number, "ACME: votre colis arrive demain") == ROK
        wait_received(server, number, 1)
        inject(server, number, "36181", text, coding)
    for number, _, _ in asking:
        _, answer = wait_received(server, number, 2, "36181")
        for part in ("ACME SAS", "01 23 45 67 89", "acme.example"):
            assert part in answer, answer


# -- 4. a shared short code --------------------------------------------------------------------

SHARED = "36190"


def test_shared_short_code_replies_reach_the_last_sender(server, esme):
    one, two = esme(server, "shop1"), esme(server, "shop2")
    s1, s2 = subscriber("alpha", 300), subscriber("beta", 301)
    assert one.submit(SHARED, s1, "Shop One: votre commande est prete") == ROK
    assert two.submit(SHARED, s2, "Shop Two: rendez-vous confirme") == ROK
    wait_received(server, s1, 1)
    wait_received(server, s2, 1)
    text1, text2 = (
        "Je passe la chercher a 18h, merci",
        "Oui, je confirme. Ça marche, à jeudi « 15h »",
    )
    inject(server, s1, SHARED, text1)
    inject(server, s2, SHARED, text2)
    assert one.replies(1) == [(s1, SHARED, text1)]
    assert two.replies(1) == [(s2, SHARED, text2)]
    # STOP from s1: off the list of shop1 (who messaged them) only.
    inject(server, s1, SHARED, "STOP")
    _, confirmation = wait_received(server, s1, 2, SHARED)
    assert confirms_stop(confirmation), confirmation
    assert "Shop One" in confirmation and "Shop Two" not in confirmation, confirmation
    assert one.submit(SHARED, s1, "Shop One: derniere chance") == ROPTEDOUT
    assert two.submit(SHARED, s1, "Shop Two: bienvenue") == ROK
    assert two.submit(SHARED, s2, "Shop Two: a jeudi") == ROK
    # A STOP from a subscriber neither messaged from it: off both lists (when in doubt, opt out).
    s3 = subscriber("alpha", 302)
    inject(server, s3, SHARED, "Stop")
    wait_received(server, s3, 1, SHARED)  # the confirmation
    assert (one.submit(SHARED, s3), two.submit(SHARED, s3)) == (ROPTEDOUT, ROPTEDOUT)
    one.read(0.3)
    two.read(0.3)
    assert (len(one.inbox), len(two.inbox)) == (1, 1)  # STOPs are no deliver_sm


# -- 5. a reply while the client is away -------------------------------------------------------


def test_reply_waits_until_the_client_binds(server, esme):
    number = subscriber("beta", 400)
    away = esme(server, "later", "transmitter")
    assert away.submit("36191", number, "Later: votre devis est pret") == ROK
    away.client.unbind()
    away.client.disconnect()
    inject(server, number, "36191", "Pouvez-vous me rappeler demain matin ?")
    sql = (
        "SELECT o.state FROM outbox o JOIN accounts a ON a.id = o.account_id "
        "WHERE a.system_id = 'later'"
    )
    eventually(lambda: server.query(sql) == [("PENDING",)], "the reply kept for the client")
    back = esme(server, "later", "receiver")
    assert back.replies(1) == [(number, "36191", "Pouvez-vous me rappeler demain matin ?")]
    eventually(lambda: server.query(sql) == [("DONE",)], "the outbox row done")


# -- 6. a long reply ---------------------------------------------------------------------------

LONG_GSM = " ".join(f"Ligne {i:02d} de ma longue reponse." for i in range(12))[:300]
LONG_UCS2 = ("Très bien reçu, je réfléchis à l’offre « été » et je reviens vers vous. " * 3)[:200]


def test_long_reply_reaches_the_client_whole(server, esme):
    client = esme(server, "longs")
    number = subscriber("alpha", 500)
    assert client.submit("36193", number, "Longs: une question ? Repondez a ce SMS") == ROK
    wait_received(server, number, 1)
    assert inject(server, number, "36193", LONG_GSM, "gsm") == 2
    assert inject(server, number, "36193", LONG_UCS2, "ucs2") == 3
    got = client.replies(2)
    assert sorted(got) == sorted([(number, "36193", LONG_GSM), (number, "36193", LONG_UCS2)])
    client.read(0.3)
    assert len(client.inbox) == 2  # each whole, once


# -- 7. sender rules ---------------------------------------------------------------------------


def test_sender_must_be_registered(server, esme):
    client = esme(server, "rules", "transmitter")
    number = subscriber("alpha", 600)
    assert client.submit("38100", number, "Rules: code 1234") == ROK
    assert client.submit("RULES", number, "Rules: code 5678") == ROK  # transactional: no STOP
    assert client.submit("rules", number, "Rules: code 9012") == ROK  # ids without case
    assert client.submit("38101", number) == RINVSRCADR
    assert client.submit("OTHER", number) == RINVSRCADR
    assert client.submit("33937123456", number) == RINVSRCADR


def test_mobile_sender_refused_unless_allowed(server, esme):
    client = esme(server, "mobile", "transmitter")
    number = subscriber("beta", 610)
    assert client.submit("33937123456", number, "From a platform number") == ROK
    assert client.submit("33612345678", number, "From a mobile") == RINVSRCADR
    assert client.submit("33712345678", number, "From a mobile") == RINVSRCADR
    server.cli("account", "set", "mobile", "--mobile-senders")
    eventually(
        lambda: client.submit("33612345678", number, "Mobile allowed") == ROK,
        "06 allowed once the server reloaded the account",
    )
    eventually(lambda: "Mobile allowed" in received(server, number, "33612345678"), "it went")


def test_promotional_alphanumeric_sender_and_stop_mention(server, esme):
    client = esme(server, "promo", "transmitter")
    number = subscriber("alpha", 620)
    offer = "PROMO: -50% sur les bottes ce week-end"
    assert client.submit("PROMO", number, offer) == RSTOPMENTION
    assert client.submit("PROMO", number, offer + ". STOP au 36192") == ROK
    assert client.submit("36192", number, offer) == ROK  # a short code can be answered
    server.cli("account", "set", "promo", "--stop-mention", "append")
    eventually(lambda: client.submit("PROMO", number, offer) == ROK, "the mention appended")
    wait_received(server, number, 3)
    assert received(server, number, "PROMO") == [
        offer + ". STOP au 36192",
        offer + " STOP au 36192",
    ]
    assert received(server, number, "36192") == [offer]


def send_parts(client: Esme, source: str, number: str, ref: int, texts: list[str]) -> list[int]:
    """A long GSM message as submit_sm with a UDH each (concatenation, 8-bit reference)."""
    return [
        client.submit(source, number, bytes((5, 0, 3, ref, len(texts), seq)) + text.encode(),
                      esm_class=0x40)
        for seq, text in enumerate(texts, 1)
    ]  # fmt: skip


def test_promotional_parts_get_the_mention_in_the_last_part(server, esme):
    client = esme(server, "promolong", "transmitter")
    number = subscriber("beta", 630)
    first, last = "Grande braderie de printemps. " * 5 + "Ven", "dredi et samedi, -30%."
    assert send_parts(client, "LONGPROMO", number, 0x21, [first, last]) == [ROK, ROK]
    assert wait_received(server, number, 2) == [first, last + " STOP au 36194"]


def test_promotional_last_part_that_can_take_the_mention(server, esme):
    """A GSM part holds 153 septets after its UDH (stored one an octet): more than the 140
    octets of the part once packed."""
    client = esme(server, "promolong", "transmitter")
    number = subscriber("beta", 631)
    first = "A" * 153
    last = ("Les offres continuent toute la semaine en magasin, venez nombreux. " * 2).strip()
    assert len(last + " STOP au 36194") <= 153  # septets: it fits in the last part
    assert len(last + " STOP au 36194") + 6 > 140  # octets, unpacked, UDH included
    assert send_parts(client, "LONGPROMO", number, 0x22, [first, last]) == [ROK, ROK]
    assert wait_received(server, number, 2) == [first, last + " STOP au 36194"]


# -- 8. the blacklist CLI ----------------------------------------------------------------------


def test_blacklist_add_and_remove(server, esme):
    client = esme(server, "black", "transmitter")
    number = subscriber("beta", 700)
    assert client.submit("38200", number) == ROK
    server.cli("blacklist", "add", "0" + number[2:], "--account", "black")  # national form
    assert client.submit("38200", number) == ROPTEDOUT
    assert client.submit("38200", subscriber("beta", 701)) == ROK  # only that number
    server.cli("blacklist", "remove", "+" + number, "--account", "black")
    assert client.submit("38200", number) == ROK

    # The global list: refused for every account.
    server.cli("blacklist", "add", "+" + number)
    assert client.submit("38200", number) == ROPTEDOUT
    assert esme(server, "platform", "transmitter").submit("38300", number) == ROPTEDOUT
    server.cli("blacklist", "remove", number)
    assert client.submit("38200", number) == ROK


# -- 9. replies to a long number nobody registered ---------------------------------------------

PLATFORM = "33937123456"  # a 09 number for platforms, in E.164: how carriers address MO to it


def answered(server, carrier: str, count: int) -> None:
    """Until the switch answered `count` subscriber messages of that carrier (it answers once
    it committed what came of them)."""
    sim = server.sims[carrier]
    eventually(lambda: sim.stats()["mo_acked"] >= count, f"{count} MO answered by the switch")


def test_reply_to_a_long_number_goes_to_who_sent_from_it(server, esme):
    client = esme(server, "platform")
    number = subscriber("alpha", 800)
    assert client.submit(PLATFORM, number, "Platform: votre RDV est a 10h") == ROK
    inject(server, number, PLATFORM, "Merci, bien recu")
    assert client.replies(1) == [(number, PLATFORM, "Merci, bien recu")]
    inject(server, number, PLATFORM, "STOP")
    assert confirms_stop(wait_received(server, number, 2, PLATFORM)[1])
    assert client.submit(PLATFORM, number) == ROPTEDOUT


def test_reply_to_a_long_number_sent_from_in_national_form(server, esme):
    """The client wrote its sender 0937123456 (TON 2); the carrier addresses the reply to
    33937123456: the same number."""
    client = esme(server, "platform")
    number = subscriber("alpha", 801)
    assert client.submit("0" + PLATFORM[2:], number, "Platform: votre RDV est a 11h") == ROK
    before = server.sims["alpha"].stats()["mo_acked"]
    inject(server, number, PLATFORM, "Merci, bien recu")
    answered(server, "alpha", before + 1)
    assert client.replies(1, timeout=2) == [(number, PLATFORM, "Merci, bien recu")]


def test_stop_to_a_long_number_sent_from_in_national_form(server, esme):
    client = esme(server, "platform", "transmitter")
    number = subscriber("beta", 802)
    assert client.submit("0" + PLATFORM[2:], number, "Platform: votre RDV est a 12h") == ROK
    before = server.sims["beta"].stats()["mo_acked"]
    inject(server, number, PLATFORM, "STOP")
    answered(server, "beta", before + 1)
    assert client.submit("0" + PLATFORM[2:], number) == ROPTEDOUT


# -- 10. STOP and what is still queued ---------------------------------------------------------


def test_stop_confirmed_while_sending_hours_are_closed(server, esme):
    """An automatic reply is never held: "night" is promotional with hours that never open."""
    client = esme(server, "night", "transmitter")
    number = subscriber("beta", 900)
    assert client.submit("36195", number, "Night: -10% cette nuit") == ROK  # held
    inject(server, number, "36195", "STOP")
    (confirmation,) = wait_received(server, number, 1)
    assert confirms_stop(confirmation), confirmation
    assert client.submit("36195", number, "Night: -20% demain") == ROPTEDOUT


def test_stop_stops_what_was_scheduled_before_it(server, esme):
    client = esme(server, "sched", "transmitter")
    number = subscriber("alpha", 910)
    later = "Sched: offre speciale dans 4 s"
    assert client.submit("36196", number, later, schedule_delivery_time="000000000004000R") == ROK
    due = time.monotonic() + 4
    inject(server, number, "36196", "STOP")
    (confirmation,) = wait_received(server, number, 1)
    assert confirms_stop(confirmation) and time.monotonic() < due
    eventually(lambda: later in received(server, number) or time.monotonic() > due + 3, "due")
    assert received(server, number) == [confirmation]
