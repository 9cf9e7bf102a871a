"""Log lines: one per event as text or JSON, numbers masked, texts withheld below DEBUG."""

import io
import json
from datetime import datetime

import pytest
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.python import log as legacy

from smsc import logs

T0 = 1714557600.125  # 2024-05-01T10:00:00.125Z


def event(fmt: str = "", level=LogLevel.info, **fields) -> dict:
    return {
        "log_format": fmt,
        "log_level": level,
        "log_namespace": "smsc.test",
        "log_time": T0,
        "log_source": None,
        **fields,
    }


def lines(fmt: str, *events, level=LogLevel.info, reveal=False) -> list[str]:
    out = io.StringIO()
    observer = logs.observer(fmt, out, level, reveal)
    for e in events:
        observer(e)
    text = out.getvalue()
    assert text == "" or text.endswith("\n")
    return text.splitlines()


def records(*events, **options) -> list[dict]:
    return [json.loads(line) for line in lines("json", *events, **options)]


def failure_event(fmt: str = "recording {what} failed", **fields) -> dict:
    """The event Logger.failure emits for a ZeroDivisionError."""
    caught = []
    log = Logger(namespace="smsc.test", observer=caught.append)
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.failure(fmt, **fields)
    return caught[0]


# -- text ------------------------------------------------------------------------------------


def test_text_line_has_time_level_namespace_message():
    (line,) = lines("text", event("SMPP listening on {host}:{port}", host="0.0.0.0", port=2775))
    assert line == "2024-05-01T10:00:00.125Z info [smsc.test] SMPP listening on 0.0.0.0:2775"


def test_text_folds_a_multiline_message():
    (line,) = lines("text", event("first\nsecond\r\nthird{x}", x="\u2028fourth"))
    assert line.endswith("first\\nsecond\\nthird\\nfourth")


def test_text_puts_a_failure_on_one_line():
    (line,) = lines("text", failure_event(what="receipts"))
    assert line.startswith("2") and " critical [smsc.test] recording receipts failed | " in line
    assert "Traceback (most recent call last): | " in line
    assert line.endswith("ZeroDivisionError: division by zero")


def test_text_skips_an_event_with_nothing_to_say():
    assert lines("text", event(""), event("said")) == [
        "2024-05-01T10:00:00.125Z info [smsc.test] said"
    ]


def test_bytes_output_gets_utf8():
    out = io.BytesIO()
    logs.observer("text", out)(event("carrier {name}", name="bouygues télécom"))
    assert out.getvalue().decode("utf-8").endswith("carrier bouygues télécom\n")


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="text, json"):
        logs.observer("xml", io.StringIO())


# -- json ------------------------------------------------------------------------------------


def test_json_has_the_fixed_keys_and_the_events_fields():
    (record,) = records(
        event(
            "bound {system_id} as {mode}",
            system_id="demo",
            mode="transceiver",
            count=3,
            ratio=0.5,
            ok=True,
            carriers=["orange", "sfr"],
            obj=object(),  # not JSON: left out
            nan=float("nan"),  # not valid JSON: left out
            message="a legacy key",  # shadowed by ours
        )
    )
    assert record == {
        "time": "2024-05-01T10:00:00.125Z",
        "level": "info",
        "namespace": "smsc.test",
        "message": "bound demo as transceiver",
        "system_id": "demo",
        "mode": "transceiver",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "carriers": ["orange", "sfr"],
    }
    assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0


def test_json_names_the_system_when_twisted_gives_one():
    (record,) = records(event("x", log_system="SmppSession,3,127.0.0.1"))
    assert record["system"] == "SmppSession,3,127.0.0.1"


def test_legacy_events_keep_their_message_and_lose_their_internal_keys():
    caught = []
    globalLogPublisher.addObserver(caught.append)
    try:
        legacy.msg("Starting factory for", 33612345678, system="SmppFactory")
    finally:
        globalLogPublisher.removeObserver(caught.append)
    (record,) = records(*caught)
    assert record["message"] == "Starting factory for 336******78"
    assert record["system"] == "SmppFactory"
    assert set(record) == {"time", "level", "namespace", "message", "system"}


def test_json_gives_a_failure_as_error_and_traceback():
    (line,) = lines("json", failure_event(what="receipts"))
    record = json.loads(line)
    assert record["level"] == "critical"
    assert record["message"] == "recording receipts failed"
    assert record["error"] == "ZeroDivisionError: division by zero"
    assert record["traceback"].startswith("Traceback (most recent call last):\n")
    assert record["what"] == "receipts"
    assert not any(key.startswith("log_") for key in record)


def test_json_is_one_line_whatever_the_text_holds():
    breaks = "a\nb\rc\x85d\u2028e\u2029f\x0bg"
    found = lines("json", event("{reason}", reason=breaks), event("next"))
    assert len(found) == 2
    assert json.loads(found[0])["message"] == breaks


# -- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "written"),
    [
        ("33612345678", "336******78"),
        ("33600000001", "336******01"),
        ("+33612345678", "+336******78"),
        ("12345678", "123***78"),
        ("to 33612345678.", "to 336******78."),
        ("id:33612345678;x", "id:336******78;x"),
        ("from +447700900123 to 33612345678", "from +447*******23 to 336******78"),
        ("short code 38000, id 1234567", "short code 38000, id 1234567"),
        ("127.0.0.1:2775", "127.0.0.1:2775"),
    ],
)
def test_numbers_are_masked_in_the_message(said, written):
    assert logs.mask(said) == written
    (record,) = records(event("{said}", said=said))
    assert record["message"] == written and record["said"] == written
    (line,) = lines("text", event("{said}", said=said))
    assert line.endswith(f"] {written}")


def test_numbers_are_masked_in_every_field():
    (record,) = records(
        event(
            "submit",
            destination=33612345678,
            destinations=["33612345678", "+33700000001", "38000"],
            params={"source_addr": "33612345678", "33612345678": 1},
            message_id=12345,
        )
    )
    assert record["destination"] == "336******78"
    assert record["destinations"] == ["336******78", "+337******01", "38000"]
    assert record["params"] == {"source_addr": "336******78", "336******78": 1}
    assert record["message_id"] == 12345


def test_numbers_are_masked_in_a_traceback():
    caught = []
    log = Logger(namespace="smsc.test", observer=caught.append)
    try:
        raise ValueError("no route to 33612345678")
    except ValueError:
        log.failure("routing failed")
    (record,) = records(caught[0])
    assert record["error"] == "ValueError: no route to 336******78"
    assert "33612345678" not in json.dumps(record)


def test_an_unformattable_event_is_masked_too():
    (line,) = lines("text", event("{dest.missing}", dest="33612345678", text="secret"))
    assert "Unable to format event" in line
    assert "33612345678" not in line and "secret" not in line


# -- texts -----------------------------------------------------------------------------------


SECRET = "Votre code est 1234 pour 33612345678"


@pytest.mark.parametrize("name", ["text", "short_message", "body", "message_payload", "mo_text"])
def test_texts_are_withheld_at_info(name):
    (line,) = lines(
        "text", event(f"got {{{name}}} from {{source}}", source="38000", **{name: SECRET})
    )
    assert line.endswith(f"got <withheld: {len(SECRET)} chars> from 38000")
    (record,) = records(event("got", **{name: SECRET}))
    assert name not in record and record[f"{name}_length"] == len(SECRET)


def test_a_text_in_bytes_is_withheld_with_its_length_in_bytes():
    (line,) = lines("text", event("got {short_message!r}", short_message=b"\x00\x41" * 5))
    assert line.endswith("got <withheld: 10 bytes>")


def test_debug_with_reveal_shows_numbers_and_texts():
    found = records(
        event("mo {source}: {text}", LogLevel.debug, source="33612345678", text=SECRET),
        event("mo {source}: {text}", LogLevel.info, source="33612345678", text=SECRET),
        level=LogLevel.debug,
        reveal=True,
    )
    assert [r["level"] for r in found] == ["debug", "info"]
    assert found[0]["message"] == f"mo 33612345678: {SECRET}"
    assert found[0]["text"] == SECRET and found[0]["source"] == "33612345678"
    # An INFO line never shows them, whatever the config says.
    assert found[1]["message"] == f"mo 336******78: <withheld: {len(SECRET)} chars>"
    assert "text" not in found[1]


@pytest.mark.parametrize(
    ("level", "reveal", "logged"),
    [
        (LogLevel.debug, False, LogLevel.debug),  # debug without reveal
        (LogLevel.info, True, LogLevel.info),  # reveal, but the level is not debug
        (LogLevel.info, True, LogLevel.error),
    ],
)
def test_without_debug_and_reveal_nothing_is_shown(level, reveal, logged):
    said = event("mo {source}: {text}", logged, source="33612345678", text=SECRET)
    for fmt in logs.FORMATS:
        (line,) = lines(fmt, said, level=level, reveal=reveal)
        assert "33612345678" not in line and SECRET not in line and "1234 pour" not in line


# -- levels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "kept"),
    [
        (LogLevel.debug, ["debug", "info", "warn", "error", "critical"]),
        (LogLevel.info, ["info", "warn", "error", "critical"]),
        ("warn", ["warn", "error", "critical"]),
        ("critical", ["critical"]),
    ],
)
def test_events_below_the_level_are_dropped(level, kept):
    said = [event("{n}", lvl, n=lvl.name) for lvl in LogLevel.iterconstants()]
    assert [r["message"] for r in records(*said, level=level)] == kept


def test_level_names():
    assert logs.LEVELS == ("debug", "info", "warn", "error", "critical")
