"""A configuration error stops `smsc serve` before it starts: one line on stderr naming the key
and what is wrong with it, a non-zero exit status, nothing listening, no traceback. One kind a
group: an unknown key, a value of the wrong type, a value out of its bounds."""

import pytest

pytestmark = pytest.mark.e2e

TIMEOUT = 30  # seconds: a serve still running by then did not refuse its config

CASES = {
    "unknown key": [
        ({"smpp": {"windw": 10}}, "smpp.windw: unknown key"),
        ({"carriers": [{"name": "orange", "prot": 2776}]}, "carriers[0].prot: unknown key"),
        ({"shutdwn": {"timeout": 5}}, "shutdwn: unknown key"),
    ],
    "wrong type": [
        ({"smpp": {"port": "2775"}}, "smpp.port: expected int, got str"),
        ({"shutdown": {"timeout": True}}, "shutdown.timeout: expected float, got bool"),
        ({"carriers": [{"name": "a", "prefixes": "3366"}]}, "carriers[0].prefixes: expected a"),
    ],
    "bad value": [
        ({"smpp": {"port": 70000}}, "smpp.port: must be between 0 and 65535, not 70000"),
        ({"smpp": {"window": 0}}, "smpp.window: must be between 1 and"),
        ({"store": {"url": "mysql://smsc@db/smsc"}}, "store.url: not a store URL"),
        ({"store": {"statement_timeout": -1}}, "store.statement_timeout: must be 0 (no limit)"),
        ({"shutdown": {"unbind_wait": 20}}, "shutdown.unbind_wait: must be 0 or more, and less"),
        ({"routing": {"default": ["nowhere"]}}, "routing.default: no carrier named nowhere"),
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    "config, message",
    [case for cases in CASES.values() for case in cases],
    ids=[f"{kind}-{i}" for kind, cases in CASES.items() for i in range(len(cases))],
)
def test_a_config_error_stops_serve_with_one_line_naming_the_key(smsc_factory, config, message):
    server = smsc_factory(config=config, start=False, upgrade=False)
    result = server.cli("serve", check=False, timeout=TIMEOUT)
    assert result.returncode != 0, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {message}"), lines[0]
    assert result.stdout == ""  # not one log line: nothing started
