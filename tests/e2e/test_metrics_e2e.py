"""Metrics end to end: a real `smsc serve` with `[metrics] port = 0` and two simulated carriers.
Known traffic goes in (accepted submit_sm and data_sm, unroutable ones refused), the receipts
come back, and the scrape must count exactly that; /healthz, /status, no number, text or id in
any label, and the Grafana dashboard's every metric in the scrape."""

import json
import re
import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_delivery import wait_until

pytestmark = pytest.mark.e2e

_METRICS = re.compile(r"metrics listening on ([0-9.]+):(\d+)")
DASHBOARD = Path(__file__).parents[2] / "conf" / "grafana-dashboard.json"
ALPHA, BETA = "33600051", "33600052"  # the carriers' prefixes (fictional numbers)
UNROUTABLE = "33700000001"  # no carrier takes 337
TEXT = b"metrics secret words"
N_ALPHA, N_BETA, N_DATA, N_REFUSED = 6, 4, 2, 3
ACCOUNT = "metrics1"


def _c(value: str) -> bytes:
    return value.encode() + b"\0"


def data_sm_body(destination: str, payload: bytes) -> bytes:
    return (
        _c("") + bytes((1, 1)) + _c("36180") + bytes((1, 1)) + _c(destination)
        + bytes((0, 1, 0)) + struct.pack(">HH", 0x0424, len(payload)) + payload
    )  # fmt: skip


def http(server, path: str) -> tuple[int, str]:
    url = f"http://{server.metrics_host}:{server.metrics_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(server) -> dict:
    """{(name, frozenset(labels)): value}."""
    status, body = http(server, "/metrics")
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            found[s.name, frozenset(s.labels.items())] = s.value
    return found


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _metrics_address(server) -> None:
    match = wait_until(lambda: _METRICS.search(server.log()), 10, "metrics listening")
    server.metrics_host, server.metrics_port = match.group(1), int(match.group(2))


@pytest.fixture(scope="module")
def switch(smsc_factory, free_ports):
    ports = iter(free_ports(2))
    carriers = [
        {"name": "alpha", "port": next(ports), "prefixes": [ALPHA], "simulate": True,
         "simulator": {"dlr_delay": 0.1}},
        {"name": "beta", "port": next(ports), "prefixes": [BETA], "simulate": True,
         "simulator": {"dlr_delay": 0.1, "fail_rate": 1.0}},
    ]  # fmt: skip
    server = smsc_factory(
        config={
            "accounts": [{"system_id": ACCOUNT, "password": "pw"}],
            "carriers": carriers,
            "metrics": {"host": "127.0.0.1", "port": 0},
        }
    )
    _metrics_address(server)
    wait_until(lambda: http(server, "/healthz")[0] == 200, 10, "a carrier bound")
    return server


def send_traffic(switch, client) -> list[str]:
    """The known traffic, once receipted; returns the message ids answered."""
    assert client.bind("transmitter", ACCOUNT, "pw").status == 0
    ids, statuses = [], []
    destinations = [f"{ALPHA}{i:03d}" for i in range(N_ALPHA)]
    destinations += [f"{BETA}{i:03d}" for i in range(N_BETA)]
    destinations += [UNROUTABLE] * N_REFUSED
    for destination in destinations:
        answer = client.call(0x04, client.submit_sm_body(destination, TEXT, registered_delivery=1))
        statuses.append(answer.status)
        if answer.status == 0:
            ids.append(answer.body.rstrip(b"\0").decode())
    for i in range(N_DATA):
        answer = client.call(0x103, data_sm_body(f"{ALPHA}9{i:02d}", TEXT))
        assert answer.command_id == 0x80000103 and answer.status == 0
        ids.append(answer.body.rstrip(b"\0").decode())
    assert statuses.count(0x0B) == N_REFUSED
    sent = N_ALPHA + N_BETA + N_DATA

    def receipted():
        s = scrape(switch)
        got = value(s, "smsc_receipts_total", carrier="alpha", state="DELIVERED") + value(
            s, "smsc_receipts_total", carrier="beta", state="UNDELIVERABLE"
        )
        return got == sent

    wait_until(receipted, 20, "every receipt counted", interval=0.2)
    return ids


def test_counts_match_the_traffic(switch, raw_client):
    switch.sent_ids = send_traffic(switch, raw_client(switch))
    s = scrape(switch)
    accepted = N_ALPHA + N_BETA + N_DATA
    assert value(s, "smsc_submits_total", account=ACCOUNT, result="accepted") == accepted
    assert value(s, "smsc_submits_total", account=ACCOUNT, result="ESME_RINVDSTADR") == N_REFUSED
    client = {"side": "client", "status": "ESME_ROK"}
    assert value(s, "smsc_pdus_received_total", command="submit_sm", **client) == (
        N_ALPHA + N_BETA + N_REFUSED
    )
    assert value(s, "smsc_pdus_received_total", command="data_sm", **client) == N_DATA
    assert value(s, "smsc_pdus_received_total", command="bind_transmitter", **client) == 1
    assert value(s, "smsc_pdus_sent_total", command="submit_sm_resp", **client) == N_ALPHA + N_BETA
    refused = {"side": "client", "command": "submit_sm_resp", "status": "ESME_RINVDSTADR"}
    assert value(s, "smsc_pdus_sent_total", **refused) == N_REFUSED
    assert value(s, "smsc_pdus_sent_total", command="data_sm_resp", **client) == N_DATA
    carrier = {"side": "carrier", "command": "submit_sm", "status": "ESME_ROK"}
    assert value(s, "smsc_pdus_sent_total", **carrier) == accepted
    assert value(s, "smsc_messages_sent_total", carrier="alpha") == N_ALPHA + N_DATA
    assert value(s, "smsc_messages_sent_total", carrier="beta") == N_BETA
    assert value(s, "smsc_receipts_total", carrier="alpha", state="DELIVERED") == N_ALPHA + N_DATA
    assert value(s, "smsc_receipts_total", carrier="beta", state="UNDELIVERABLE") == N_BETA
    assert value(s, "smsc_receipts_unmatched_total", carrier="alpha") == 0
    assert s[("smsc_receipt_timeouts_total", frozenset())] == 0  # there, and none yet
    assert value(s, "smsc_carrier_submit_seconds_count", carrier="alpha") == N_ALPHA + N_DATA
    assert value(s, "smsc_submit_resp_seconds_count") == accepted + N_REFUSED
    to_receipt = "smsc_submit_to_receipt_seconds_count"
    assert value(s, to_receipt, carrier="alpha") == N_ALPHA + N_DATA
    assert value(s, to_receipt, carrier="beta") == N_BETA
    assert value(s, "smsc_binds", account=ACCOUNT, mode="transmitter") == 1
    assert value(s, "smsc_carrier_links_bound", carrier="alpha") == 1
    assert value(s, "smsc_carrier_links_bound", carrier="beta") == 1
    assert value(s, "smsc_carrier_window_in_use", carrier="alpha") == 0
    assert value(s, "smsc_carrier_reconnects_total", carrier="alpha") == 0
    for state in ("waiting", "scheduled", "in_flight"):
        assert ("smsc_queue_depth", frozenset({("state", state)})) in s
    assert ("smsc_outbox_depth", frozenset()) in s


def test_no_number_text_or_id_in_labels(switch):
    ids = switch.sent_ids  # the traffic of the test above
    s = scrape(switch)
    words = {w.decode() for w in TEXT.split()}
    for name, labels in s:
        for key, label in labels:
            if key == "le":  # histogram bucket bounds
                continue
            assert not re.search(r"\d{8,}", label), (name, key, label)
            assert not label.isdigit(), (name, key, label)
            assert label not in ids, (name, key, label)
            assert not words & set(re.split(r"\W+", label)), (name, key, label)
    _, body = http(switch, "/metrics")
    assert ALPHA not in body and UNROUTABLE not in body and TEXT.decode() not in body


def test_healthz_and_status(switch, raw_client):
    assert raw_client(switch).bind("transmitter", ACCOUNT, "pw").status == 0
    assert http(switch, "/healthz") == (200, "ok\n")
    status, body = http(switch, "/status")
    assert status == 200
    found = json.loads(body)
    assert set(found) == {"carriers", "binds", "node"}
    assert found["node"]["live"] == 1 and found["node"]["name"]
    assert [c["name"] for c in found["carriers"]] == ["alpha", "beta"]
    for c in found["carriers"]:
        assert set(c) == {"name", "links", "bound", "binds", "throttled"}
        assert c["bound"] == 1 and c["binds"] == 1 and c["throttled"] is False
        assert c["links"] == [{"state": "bound", "window_in_use": 0}]
    assert found["binds"] == {ACCOUNT: {"transmitter": 1, "receiver": 0, "transceiver": 0}}


def test_dashboard_uses_only_scraped_metrics(switch):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = dashboard["templating"]["list"]
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in variables)
    _, body = http(switch, "/metrics")  # the declared families too: a gauge may have no sample
    scraped = {name for name, _ in scrape(switch)}
    scraped |= set(re.findall(r"^# TYPE (\w+)", body, re.M))
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used.update(re.findall(r"\bsmsc_[a-z_]+", target["expr"]))
    assert used and used <= scraped, used - scraped
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("refusals", "queue", "outbox", "binds", "window", "latency", "opt-outs"):
        assert topic in titles


def test_healthz_without_carriers(smsc_factory):
    server = smsc_factory(config={"metrics": {"port": 0}})
    _metrics_address(server)
    assert http(server, "/healthz") == (503, "no carrier configured\n")
    status, body = http(server, "/status")
    found = json.loads(body)
    assert status == 200 and (found["carriers"], found["binds"]) == ([], {})
    assert found["node"]["live"] == 1
