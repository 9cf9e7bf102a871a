"""Route choice: number portability, longest prefix, priority, default; each carrier once."""

import pytest

from smsc.config import CarrierConfig, Config, RoutingConfig
from smsc.routing.router import Router


def carrier(name, prefixes=(), priority=1):
    return CarrierConfig(name=name, prefixes=list(prefixes), priority=priority)


@pytest.fixture
def carriers():
    return [
        carrier("orange", ["3366", "3367"], priority=1),
        carrier("sfr", ["3361", "3362"], priority=2),
        carrier("bouygues", ["3366", "336"], priority=1),
        carrier("free", ["33"], priority=3),
    ]


def test_longest_prefix_first(carriers):
    router = Router(carriers, [])
    # 3366: orange and bouygues (both priority 1: config order); then 336: bouygues (already);
    # then 33: free.
    assert router.candidates("33661234567") == ["orange", "bouygues", "free"]
    assert router.candidates("33612345678") == ["sfr", "bouygues", "free"]
    assert router.candidates("33691234567") == ["bouygues", "free"]
    assert router.candidates("33712345678") == ["free"]


def test_priority_within_a_prefix():
    router = Router(
        [carrier("a", ["336"], 5), carrier("b", ["336"], 2), carrier("c", ["336"], 5)], []
    )
    assert router.candidates("33612345678") == ["b", "a", "c"]  # 2, then 5s in config order


def test_a_longer_prefix_beats_a_better_priority():
    router = Router([carrier("cheap", ["33"], 0), carrier("exact", ["33612"], 9)], [])
    assert router.candidates("33612345678") == ["exact", "cheap"]


def test_admin_routes(carriers):
    # sfr at 3366 with priority 0 goes before orange (1), configured at the same prefix.
    router = Router(carriers, [], [("3366", "sfr", 0)])
    assert router.candidates("33661234567") == ["sfr", "orange", "bouygues", "free"]
    # An admin route at the same priority as a configured one: config order breaks the tie.
    router = Router(carriers, [], [("3366", "sfr", 1)])
    assert router.candidates("33661234567") == ["orange", "sfr", "bouygues", "free"]
    # A new, longer prefix.
    router = Router(carriers, [], [("336612", "free", 7)])
    assert router.candidates("33661234567") == ["free", "orange", "bouygues"]
    assert router.candidates("33661334567") == ["orange", "bouygues", "free"]


def test_an_admin_route_overrides_the_configured_priority(carriers):
    router = Router(carriers, [], [("3366", "bouygues", 5)])
    assert router.candidates("33661234567") == ["orange", "bouygues", "free"]
    router = Router(carriers, [], [("3366", "orange", 5)])
    assert router.candidates("33661234567") == ["bouygues", "orange", "free"]
    # At its other configured prefix, orange keeps its own priority.
    assert router.candidates("33671234567") == ["orange", "bouygues", "free"]


def test_admin_routes_to_unknown_carriers_are_ignored(carriers):
    router = Router(carriers, [], [("3366", "ghost", 0), ("44", "ghost", 0)])
    assert router.candidates("33661234567") == ["orange", "bouygues", "free"]
    assert router.candidates("447911123456") == []
    assert not router.routable("447911123456")


def test_number_portability_first(carriers):
    router = Router(carriers, ["orange"])
    assert router.candidates("33661234567", "sfr") == ["sfr", "orange", "bouygues", "free"]
    # Already a candidate: moved to the front, not repeated.
    assert router.candidates("33661234567", "free") == ["free", "orange", "bouygues"]
    # A ported number outside every prefix: its carrier, then the default.
    assert router.candidates("447911123456", "sfr") == ["sfr", "orange"]
    # A carrier that is not configured (any more) is skipped.
    assert router.candidates("33661234567", "ghost") == ["orange", "bouygues", "free"]


def test_default_last(carriers):
    router = Router(carriers, ["sfr", "orange"])
    assert router.candidates("33661234567") == ["orange", "bouygues", "free", "sfr"]
    assert router.candidates("447911123456") == ["sfr", "orange"]
    assert router.candidates("447911123456", "bouygues") == ["bouygues", "sfr", "orange"]


def test_no_duplicates(carriers):
    router = Router(
        carriers,
        ["free", "orange", "free"],
        [("33", "orange", 9), ("336", "orange", 0), ("3366", "orange", 3), ("33661", "free", 1)],
    )
    for number in ("33661234567", "33612345678", "33712345678", "447911123456"):
        for ported in (None, "orange", "free", "sfr"):
            got = router.candidates(number, ported)
            assert len(got) == len(set(got)), (number, ported, got)
    assert router.candidates("33661234567") == ["free", "bouygues", "orange"]  # orange at 3


def test_unroutable():
    router = Router([carrier("orange", ["336"])], [])
    assert router.candidates("33712345678") == []
    assert router.candidates("3") == []
    assert router.candidates("") == []
    assert not router.routable("33712345678")
    assert router.routable("33612345678")
    assert Router([], []).candidates("33612345678") == []


def test_routable(carriers):
    router = Router(carriers, [])
    assert router.routable("33612345678")
    assert not router.routable("447911123456")
    # Number portability does not make a number routable (the table is not in memory).
    assert router.candidates("447911123456", "sfr") == ["sfr"]
    assert not router.routable("447911123456")
    # A default route takes every number.
    assert Router(carriers, ["free"]).routable("447911123456")
    assert Router(carriers, [], [("44", "sfr", 1)]).routable("447911123456")


def test_a_prefix_as_long_as_the_number():
    router = Router([carrier("a", ["33612345678"]), carrier("b", ["336"])], [])
    assert router.candidates("33612345678") == ["a", "b"]
    assert router.candidates("33612345679") == ["b"]


def test_with_routes_keeps_the_rest(carriers):
    router = Router(carriers, ["sfr"], [("44", "orange", 1)])
    assert router.candidates("447911123456") == ["orange", "sfr"]
    swapped = router.with_routes([("44", "bouygues", 1)])
    assert swapped.candidates("447911123456") == ["bouygues", "sfr"]
    assert swapped.routes == (("44", "bouygues", 1),)
    assert router.candidates("447911123456") == ["orange", "sfr"]  # the old one is unchanged
    assert router.with_routes([]).candidates("447911123456") == ["sfr"]


def test_from_config(carriers):
    config = Config(carriers=carriers, routing=RoutingConfig(default=["free"]))
    router = Router.from_config(config, [("44", "sfr", 1)])
    assert router.carriers == ("orange", "sfr", "bouygues", "free")
    assert router.candidates("447911123456") == ["sfr", "free"]


def test_candidates_are_a_fresh_list(carriers):
    router = Router(carriers, [])
    router.candidates("33661234567").clear()
    assert router.candidates("33661234567") == ["orange", "bouygues", "free"]


def test_lookup_does_not_scan():
    """Thousands of routes cost no more per lookup than a few: at most 15 dict probes."""
    many = [(f"33{i:05d}", "b", 1) for i in range(20_000)]
    router = Router([carrier("a", ["33"]), carrier("b")], [], many)
    assert router.candidates("33012345678") == ["b", "a"]
    assert router.candidates("33999999999") == ["a"]
    assert len(router._lengths) == 2
