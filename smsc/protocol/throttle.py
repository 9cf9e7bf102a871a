"""Throughput caps, on an injected clock."""


class TokenBucket:
    """A throughput cap: `rate` a second, bursts of up to one second (an account's submits,
    a carrier's parts).

    A request for more than a second's worth (a submit_multi to many destinations) waits for
    a full bucket and then leaves it in debt, so that it is slowed down, never refused forever.
    """

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: float, now: float):
        self.rate = rate
        self.tokens = float(rate)
        self.stamp = now

    def take(self, n: int, now: float) -> bool:
        # max(0, …): a wall clock stepped back must not drain the bucket for that long.
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(float(self.rate), self.tokens + elapsed * self.rate)
        self.stamp = now
        if self.tokens < min(n, self.rate):
            return False
        self.tokens -= n
        return True

    def wait(self, now: float) -> float:
        """Seconds until one more can be taken."""
        tokens = self.tokens + max(0.0, now - self.stamp) * self.rate
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate
