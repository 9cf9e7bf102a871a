"""Kannel (Debian's `kannel`: bearerbox and smsbox) as a client of the switch, the way an
aggregator runs it: its SMPP SMSC connection binds to `smsc serve` as a transceiver, messages
go in through smsbox's sendsms HTTP interface, delivery reports come back to a dlr-url, and
subscribers' replies reach its sms-service's get-url. Skipped where Kannel is not installed
(`.ci/run` installs it).

What it shows: Kannel matches our receipts to the ids we answered its submit_sm with (DLR
type 1, delivered), also for a long text it splits into UDH parts itself (one report for the
whole); a reply reaches it as a deliver_sm it takes for an MO; and an opted-out number is
refused at submit with a status Kannel turns into its DLR type 16 (SMSC reject).
"""

import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not shutil.which("bearerbox"), reason="Kannel is not installed"),
]

SOURCE = "36180"  # the short code Kannel sends from, and its subscribers reply to
PREFIX = "33600015"  # the simulated carrier's numbers, fictional
DELIVERED, SMSC_REJECT = "1", "16"  # Kannel's DLR types


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {what}")
        time.sleep(0.1)
    return value


class Hooks(ThreadingHTTPServer):
    """Kannel's side of HTTP: the dlr-url and the get-url it calls, as query dicts by path."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        super().__init__(("127.0.0.1", 0), _Hook)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def got(self, path: str, **match) -> list[dict]:
        return [
            query
            for p, query in self.calls
            if p == path and all(query.get(k) == v for k, v in match.items())
        ]


class _Hook(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        self.server.calls.append((url.path, query))
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()  # an empty body: the sms-service sends no reply

    def log_message(self, *args):
        pass


def kannel_conf(ports: dict, switch_port: int, hooks: Hooks, workdir) -> str:
    return f"""
group = core
admin-port = {ports["admin"]}
admin-password = secret
smsbox-port = {ports["smsbox"]}
log-file = "{workdir}/bearerbox.log"
log-level = 0
box-allow-ip = 127.0.0.1
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = smsc
host = 127.0.0.1
port = {switch_port}
transceiver-mode = true
smsc-username = kannel
smsc-password = kannelpw
system-type = ""
reconnect-delay = 1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {ports["smsbox"]}
sendsms-port = {ports["sendsms"]}
log-file = "{workdir}/smsbox.log"
log-level = 0

group = sendsms-user
username = tester
password = testerpw
max-messages = 5
concatenation = true

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "{hooks.url("/mo")}?from=%p&to=%P&text=%a"
"""


@pytest.fixture(scope="module")
def kannel(smsc_factory, free_ports, sim_control, smsc_account, tmp_path_factory):
    carrier_port, control_port, admin, smsbox, sendsms = free_ports(5)
    switch = smsc_factory(
        config={
            "carriers": [
                {"name": "alpha", "port": carrier_port, "prefixes": [PREFIX], "simulate": True,
                 "simulator": {"dlr_delay": 0.1, "control_port": control_port}},
            ],
        },
        accounts=[smsc_account("kannel", "kannelpw")],
    )  # fmt: skip
    hooks = Hooks()
    workdir = tmp_path_factory.mktemp("kannel")
    conf = workdir / "kannel.conf"
    ports = {"admin": admin, "smsbox": smsbox, "sendsms": sendsms}
    conf.write_text(kannel_conf(ports, switch.address[1], hooks, workdir))
    boxes = []

    def start(box: str) -> None:
        log = (workdir / f"{box}.out").open("w")
        boxes.append(subprocess.Popen([box, str(conf)], stdout=log, stderr=log))

    try:
        start("bearerbox")
        # smsbox gives up at once when bearerbox does not listen for it yet.
        wait_until(lambda: _listens(smsbox), 20, "bearerbox listening for smsbox")
        start("smsbox")
        status = f"http://127.0.0.1:{admin}/status.txt?password=secret"
        ready = lambda: "smsbox:" in (text := _get(status)) and "(online" in text  # noqa: E731
        wait_until(ready, 20, "smsbox connected, and the SMPP connection to the switch online")
        switch.carrier = sim_control(control_port)
        switch.hooks = hooks
        switch.sendsms = f"http://127.0.0.1:{sendsms}/cgi-bin/sendsms"
        switch.kannel_logs = workdir
        yield switch
    finally:
        for proc in reversed(boxes):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        hooks.shutdown()


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.read().decode(errors="replace")
    except OSError:
        return ""


def sendsms(kannel, to: str, text: str, token: str, mask: int) -> None:
    """Through smsbox, with a delivery report of the types in `mask` to the hooks' /dlr. The
    number goes with its '+': Kannel sends it then as international (TON 1), and a number
    without it as national (TON 2), which 336… is not."""
    dlr = kannel.hooks.url("/dlr") + f"?type=%d&token={token}"
    query = urllib.parse.urlencode(
        {"username": "tester", "password": "testerpw", "from": SOURCE, "to": "+" + to, "text": text,
         "dlr-mask": mask, "dlr-url": dlr}
    )  # fmt: skip
    answer = _get(f"{kannel.sendsms}?{query}")
    assert "Accepted" in answer or "Queued" in answer, answer


def took(kannel, number: str) -> list[str]:
    """The texts the simulated carrier took for `number`."""
    return [r["text"] for r in kannel.carrier.received() if r["destination"] == number]


def test_a_message_from_kannel_is_delivered_and_kannel_gets_its_report(kannel):
    number = PREFIX + "001"
    sendsms(kannel, number, "Bonjour de Kannel", "first", mask=3)
    wait_until(lambda: took(kannel, number), 20, "the carrier took the message")
    assert took(kannel, number) == ["Bonjour de Kannel"]
    # Kannel found its message by the id we answered it with, in our receipt.
    wait_until(lambda: kannel.hooks.got("/dlr", token="first"), 20, "Kannel's DLR callback")
    assert [q["type"] for q in kannel.hooks.got("/dlr", token="first")] == [DELIVERED]


def test_a_reply_reaches_kannel_as_an_mo(kannel):
    number = PREFIX + "002"
    sendsms(kannel, number, "Une question ?", "asked", mask=3)
    wait_until(lambda: kannel.hooks.got("/dlr", token="asked"), 20, "the first message's DLR")
    # Nobody registered the short code: the reply goes to who last sent from it to that number.
    kannel.carrier.mo(number, SOURCE, "Oui merci")
    (mo,) = wait_until(lambda: kannel.hooks.got("/mo", text="Oui merci"), 20, "the MO at Kannel")
    assert mo["from"].removeprefix("+") == number and mo["to"] == SOURCE


def test_an_opted_out_number_is_refused_and_kannel_reports_the_reject(kannel):
    number = PREFIX + "003"
    sendsms(kannel, number, "Promo", "before", mask=3)
    wait_until(lambda: kannel.hooks.got("/dlr", token="before"), 20, "the first message's DLR")
    kannel.carrier.mo(number, SOURCE, "STOP")
    confirmed = lambda: any("desinscription" in t for t in took(kannel, number))  # noqa: E731
    wait_until(confirmed, 20, "the STOP confirmation, sent to the subscriber")
    sendsms(kannel, number, "Promo encore", "after", mask=19)  # 16: SMSC reject
    (dlr,) = wait_until(lambda: kannel.hooks.got("/dlr", token="after"), 20, "the reject DLR")
    assert dlr["type"] == SMSC_REJECT
    assert "Promo encore" not in took(kannel, number)


def test_a_long_message_kannel_splits_is_delivered_whole_with_one_report(kannel):
    number = PREFIX + "004"
    text = "Votre commande est prete. " * 8  # 208 characters: two parts, split by Kannel
    sendsms(kannel, number, text, "long", mask=3)
    wait_until(lambda: len(took(kannel, number)) == 2, 20, "both parts at the carrier")
    assert "".join(took(kannel, number)) == text  # the parts' texts, Kannel's UDH taken off
    wait_until(lambda: kannel.hooks.got("/dlr", token="long"), 20, "Kannel's DLR callback")
    time.sleep(1)  # a second report would come with the second part's receipt
    assert [q["type"] for q in kannel.hooks.got("/dlr", token="long")] == [DELIVERED]
