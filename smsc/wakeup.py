"""The timer of the loops that claim work from the store (dispatcher, outbox, callbacks): it
calls its function once, at the earliest of the times it was asked for, until stopped."""


class Wakeup:
    def __init__(self, clock, fn):
        self._clock = clock
        self._fn = fn
        self._call = None
        self.stopped = False

    def __call__(self, delay: float = 0.0) -> None:
        if self.stopped:
            return
        call = self._call
        if call is not None and call.active():
            if call.getTime() <= self._clock.seconds() + delay:
                return  # it comes sooner already
            call.cancel()
        self._call = self._clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._call = None
        self._fn()

    def stop(self) -> None:
        self.stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
