"""A stand-in for `smsc.routing.links.Carrier`, for tests that drive the dispatcher on a
`Clock`: it keeps the parts queued on it instead of sending them."""

from smsc.config import CarrierConfig


class FakeCarrier:
    def __init__(self, name, *, bound=True, room=100, long_messages="udh", prefixes=(), priority=1):
        self.name = name
        self.config = CarrierConfig(
            name, prefixes=list(prefixes), priority=priority, long_messages=long_messages
        )
        self.bound = bound
        self.capacity = room
        self.queue = []

    def room(self):
        return self.capacity - len(self.queue) if self.bound else 0

    def enqueue(self, parts):
        self.queue.extend(parts)

    def take_queue(self):
        parts, self.queue = self.queue, []
        return parts
