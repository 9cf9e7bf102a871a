"""The steps of the shutdown (smsc.shutdown) on a Clock with fake sessions: new submits are
refused at once, the clients are unbound only once what the store was handed is answered,
sessions not bound are closed, and whoever does not answer the unbind in time is cut."""

from twisted.internet import defer
from twisted.internet.task import Clock

from smsc import shutdown
from smsc.protocol.session import State


class Transport:
    def __init__(self):
        self.did = []

    def unregisterProducer(self):
        self.did.append("unregister")

    def loseConnection(self):
        self.did.append("lose")

    def abortConnection(self):
        self.did.append("abort")


class Session:
    def __init__(self, state):
        self.state = state

    @property
    def bound(self):
        return self.state in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX)


class Client:
    def __init__(self, state):
        self.session = Session(state)
        self.transport = Transport()
        self.unbinds = 0

    def unbind(self):
        self.unbinds += 1
        self.session.state = State.UNBOUND


class Server:
    def __init__(self, *clients):
        self.clients = set(clients)


class Acceptor:
    closing = False


class Store:
    def __init__(self):
        self.writes = []

    def write(self, fn, *args):
        d = defer.Deferred()
        self.writes.append((fn, d))
        return d


def test_clients_are_unbound_once_the_store_answered_what_it_was_handed():
    clock = Clock()
    bound, opening, leaving = Client(State.BOUND_TRX), Client(State.OPEN), Client(State.UNBOUND)
    acceptor, store = Acceptor(), Store()
    done = []
    shutdown.drain_clients(
        Server(bound, opening, leaving), acceptor, store, clock, 2.0
    ).addCallback(done.append)
    assert acceptor.closing  # new submits refused from now on
    assert bound.unbinds == 0  # the answers of the submits handed over come first
    ((barrier, d),) = store.writes
    assert barrier(None) is None  # the barrier does nothing but wait its turn
    d.callback(None)
    assert bound.unbinds == 1
    assert opening.transport.did == ["unregister", "lose"]
    assert leaving.unbinds == 0 and leaving.transport.did == []  # closes by itself
    clock.advance(0.5)
    assert done == []
    for c in (bound, opening, leaving):
        c.session.state = State.CLOSED
    clock.advance(0.05)
    assert done == [None]
    assert all("abort" not in c.transport.did for c in (bound, opening, leaving))


def test_who_does_not_answer_the_unbind_in_time_is_cut():
    clock = Clock()
    mute, polite = Client(State.BOUND_TX), Client(State.BOUND_RX)
    store, done = Store(), []
    shutdown.drain_clients(Server(mute, polite), Acceptor(), store, clock, 2.0).addCallback(
        done.append
    )
    store.writes[0][1].errback(RuntimeError("store away"))  # unbinding goes on all the same
    assert (mute.unbinds, polite.unbinds) == (1, 1)
    polite.session.state = State.CLOSED
    clock.advance(1.9)
    assert done == []
    clock.advance(0.2)
    assert done == [None]
    assert mute.transport.did == ["abort"] and polite.transport.did == []


def test_no_clients_no_wait():
    store, done = Store(), []
    shutdown.drain_clients(Server(), Acceptor(), store, Clock(), 2.0).addCallback(done.append)
    store.writes[0][1].callback(None)
    assert done == [None]
