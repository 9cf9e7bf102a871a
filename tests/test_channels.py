"""What every non-SMPP channel shares (smsc.channels): a text as submit_sm fields, and the
accept call with one outcome per number."""

import pytest

from smsc import channels
from smsc.protocol import smpptime
from smsc.protocol.constants import Status, Tag

NOW = 1_767_225_600.0


def test_a_gsm_text_is_sent_in_the_default_alphabet():
    params, tlvs = channels.compose("Hello @ 5€", "ACME")
    assert params["data_coding"] == 0
    assert params["short_message"] == b"Hello \x00 5\x1be"
    assert (params["source_addr"], params["source_addr_ton"]) == ("ACME", 5)
    assert tlvs == {} and params["registered_delivery"] == 0


def test_a_text_outside_gsm_goes_in_ucs2_and_a_long_one_in_message_payload():
    params, tlvs = channels.compose("Привет " * 40, "+33600000009", receipt=True)
    assert params["data_coding"] == 8 and params["short_message"] == b""
    assert tlvs[Tag.message_payload] == ("Привет " * 40).encode("utf-16-be")
    assert (params["source_addr_ton"], params["source_addr_npi"]) == (0, 1)
    assert params["registered_delivery"] == 1


def test_times_are_absolute_smpp_times():
    params, _ = channels.compose("hi", send_at=NOW + 3600, valid_until=NOW + 7200)
    assert smpptime.parse(params["schedule_delivery_time"], NOW) == NOW + 3600
    assert smpptime.parse(params["validity_period"], NOW) == NOW + 7200


class FakeAcceptor:
    """Answers each submit with the given verdicts: an id, or a Status, per destination."""

    def __init__(self, verdicts=None, whole=None):
        self.verdicts = verdicts
        self.whole = whole
        self.calls = []

    def submit(self, account, params, tlvs, destinations, done, callback=None, multi=True):
        self.calls.append((destinations, callback, multi))
        if self.whole is not None:
            return done(self.whole, [], [])
        verdicts = self.verdicts[: len(destinations)]
        self.verdicts = self.verdicts[len(destinations) :]
        ids = [v for v in verdicts if type(v) is int]
        pairs = zip(destinations, verdicts, strict=True)
        refused = [(d, v) for d, v in pairs if type(v) is not int]
        done(Status.ROK if ids else refused[0][1], ids, refused)


def outcomes(d):
    results = []
    d.addCallback(results.append)
    (result,) = results
    return result


def test_each_number_gets_its_own_id_or_the_reason_it_was_refused():
    acceptor = FakeAcceptor([7, Status.ROPTEDOUT, 8])
    status, got = outcomes(
        channels.submit(
            acceptor,
            None,
            ["0600000001", "33600000002", "+33600000003"],
            {},
            {},
            "https://hooks.example/r",
        )  # fmt: skip
    )
    assert status == Status.ROK
    assert [o.as_dict() for o in got] == [
        {"to": "0600000001", "id": "7"},
        {
            "to": "33600000002",
            "error": "ROPTEDOUT",
            "status": 0x401,
            "reason": channels.REASONS[Status.ROPTEDOUT],
        },
        {"to": "+33600000003", "id": "8"},
    ]
    ((destinations, callback, multi),) = acceptor.calls
    assert destinations[0] == (0, 1, "0600000001")
    assert callback == "https://hooks.example/r" and multi is False


def test_a_request_refused_as_a_whole_refuses_each_number_with_its_status():
    status, got = outcomes(
        channels.submit(FakeAcceptor(whole=Status.RTHROTTLED), None, ["1", "2"], {}, {})
    )
    assert status == Status.RTHROTTLED
    assert [(o.id, o.status) for o in got] == [(None, Status.RTHROTTLED)] * 2


@pytest.mark.parametrize("accepted", [True, False])
def test_a_long_list_goes_in_chunks_and_comes_back_whole(accepted):
    n = channels.CHUNK * 2 + 5
    verdicts = list(range(1, n + 1)) if accepted else [Status.RINVDSTADR] * n
    acceptor = FakeAcceptor(verdicts)
    numbers = [f"336{i:08d}" for i in range(n)]
    status, got = outcomes(channels.submit(acceptor, None, numbers, {}, {}))
    assert [len(c[0]) for c in acceptor.calls] == [channels.CHUNK, channels.CHUNK, 5]
    assert [o.to for o in got] == numbers
    if accepted:
        assert status == Status.ROK and [o.id for o in got] == list(range(1, n + 1))
    else:
        assert status == Status.RINVDSTADR and {o.status for o in got} == {Status.RINVDSTADR}
