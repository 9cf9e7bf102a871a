"""Route choice: which carriers to try for a number, in order. Pure and built once, since it
runs for every message: a lookup is at most 15 dict probes (one per prefix length of the
number, longest first), never a scan of the routes.

Order of the candidates for a number:
1. the carrier the number was ported to (number portability), when given and configured;
2. the carriers of the longest matching prefix, by priority (lowest first; ties in config
   order), then those of each shorter matching prefix in turn, by priority;
3. the default route (`[routing] default`), in its order.
Each carrier appears once, at its first place. A prefix comes from a carrier's configured
`prefixes` (at the carrier's own `priority`) or from an admin route (`smsc route add`, at the
route's priority; an admin route for a prefix the carrier also has in the config overrides its
priority there). Admin routes to carriers that are not configured are ignored.
"""

from collections.abc import Iterable, Sequence

from ..config import CarrierConfig, Config


class Router:
    """Immutable: to change the admin routes, build a new one with `with_routes` and swap it
    in (one reference assignment, so the dispatcher never sees a half-built table)."""

    __slots__ = ("_carriers", "_default", "_routes", "_table", "_lengths", "_names")

    def __init__(
        self,
        carriers: Sequence[CarrierConfig],
        default: Sequence[str],
        routes: Iterable[tuple[str, str, int]] = (),
    ):
        self._carriers = tuple(carriers)
        self._names = {c.name: i for i, c in enumerate(self._carriers)}
        self._default = tuple(dict.fromkeys(n for n in default if n in self._names))
        self._routes = tuple(routes)

        # prefix → {carrier: priority}; an admin route replaces a configured priority.
        at: dict[str, dict[str, int]] = {}
        for carrier in self._carriers:
            for prefix in carrier.prefixes:
                at.setdefault(prefix, {})[carrier.name] = carrier.priority
        for prefix, name, priority in self._routes:
            if name in self._names and prefix:
                at.setdefault(prefix, {})[name] = priority

        # Each prefix's whole answer, computed once: its own carriers by (priority, config
        # order), then the answer of its longest shorter prefix in the table, then the default.
        self._table: dict[str, tuple[str, ...]] = {}
        for prefix in sorted(at, key=len):  # shorter prefixes are resolved first
            own = sorted(at[prefix], key=lambda n, p=prefix: (at[p][n], self._names[n]))
            shorter = range(len(prefix) - 1, 0, -1)
            rest = _lookup(self._table, shorter, prefix) or self._default
            self._table[prefix] = tuple(dict.fromkeys((*own, *rest)))
        # The prefix lengths in the table, longest first: what a lookup tries.
        self._lengths = tuple(sorted({len(p) for p in self._table}, reverse=True))

    @classmethod
    def from_config(cls, config: Config, routes: Iterable[tuple[str, str, int]] = ()) -> "Router":
        return cls(config.carriers, config.routing.default, routes)

    def with_routes(self, routes: Iterable[tuple[str, str, int]]) -> "Router":
        """The same carriers and default route with these admin routes instead."""
        return Router(self._carriers, self._default, routes)

    def _chain(self, number: str) -> tuple[str, ...]:
        return _lookup(self._table, self._lengths, number) or self._default

    def candidates(self, number: str, ported_to: str | None = None) -> list[str]:
        """The carriers to try for an E.164 number, in order; [] when no route can take it."""
        chain = self._chain(number)
        if ported_to is None or ported_to not in self._names:
            return list(chain)
        return [ported_to, *(c for c in chain if c != ported_to)]

    def routable(self, number: str) -> bool:
        """Whether a prefix or the default route can take the number: what submit checks to
        refuse a destination with ESME_RINVDSTADR.

        Number portability alone does not make a number routable: the portability table can
        hold millions of numbers and is kept in the store, not in memory, so checking it here
        would cost a query per submit. A ported number still has its original operator's
        prefix, so in practice the prefixes cover it; and the dispatcher, which does read the
        table in batches, puts the ported carrier first."""
        return bool(self._chain(number))

    @property
    def carriers(self) -> tuple[str, ...]:
        """The configured carriers' names, in config order."""
        return tuple(self._names)

    @property
    def routes(self) -> tuple[tuple[str, str, int], ...]:
        """The admin routes it was built with."""
        return self._routes


def _lookup(
    table: dict[str, tuple[str, ...]], lengths: Iterable[int], number: str
) -> tuple[str, ...] | None:
    """The answer of the longest prefix of `number` in `table`, trying `lengths` in turn."""
    size = len(number)
    for n in lengths:
        if n <= size:
            hit = table.get(number[:n])
            if hit is not None:
                return hit
    return None
