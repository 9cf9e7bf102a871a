"""Wiring: the services a config names, on one Twisted reactor."""

import functools
import math
import sys
from dataclasses import dataclass, field

from twisted.internet.defer import gatherResults
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, globalLogBeginner

from . import hours, logs, tls
from . import shutdown as shutdown_steps
from .accept import Acceptor
from .channels import Context
from .channels.callbacks import CallbackSender
from .cluster import Cluster
from .config import Config, HttpConfig
from .deliveries import OutboxSender
from .inbound import receipts, replies
from .inbound.handler import Inbound, client_receipt
from .metrics import Metrics, site
from .routing.dispatcher import Dispatcher
from .routing.links import Carrier
from .routing.router import Router
from .server import SmppServer
from .store import accounts, credit, notify, optouts, routing
from .store import retention as message_retention  # start() has a local `retention`
from .store.db import check_schema, writing
from .store.faults import Quiet
from .store.queue import Settle
from .store.service import Store

_log = Logger()
RELOAD = 5.0  # seconds: routes and accounts changed with the CLI reach a running server so fast
PURGE = 3600.0  # seconds between purges of the opt-out list
RETENTION = 86400.0  # seconds between purges of finished messages' texts and numbers


@dataclass
class Switch:
    """The running services, for tests and the shutdown."""

    store: Store
    server: SmppServer
    cluster: Cluster
    carriers: list[Carrier] = field(default_factory=list)
    dispatcher: Dispatcher | None = None
    inbound: Inbound | None = None
    outbox: OutboxSender | None = None
    callbacks: CallbackSender | None = None  # receipts by HTTP callback or email
    simulators: list = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)


def start(config: Config, reactor) -> Switch:
    """Start everything on `reactor` (not yet running). Raises SchemaBehind on an old store,
    ConfigError on a TLS file that cannot be used."""
    listener_tls, carrier_tls, smtp_tls = _tls(config)
    c = config.store
    store = Store(c.url, reactor, c.statement_timeout, c.connect_timeout)
    # What can refuse the start (schema, config accounts, a port in use) runs before the
    # store's threads start: once they run, an exception here would leave a process that
    # never exits.
    check_schema(store.engine)
    _ensure_accounts(store, config, reactor.seconds())
    with writing(store.engine) as conn:
        optout_key = optouts.hash_key(conn, config.optout.hash_key)
    metrics = Metrics()
    store.writer.low_balance = functools.partial(_low_balance, metrics)
    acceptor = Acceptor(store, reactor, optout_key, metrics)
    cluster = Cluster(store, reactor, config.cluster, acceptor)
    cluster.join()
    server = SmppServer(config.smpp, store, acceptor, reactor, metrics, config.limits)
    server.cluster = cluster
    switch = Switch(store, server, cluster, metrics=metrics)
    switch.simulators = _start_simulators(config, reactor)
    channels = Context(store, acceptor, server, reactor, config, metrics)
    ports = _listen_channels(channels, smtp_tls)
    ports += _listen_smpp(server, config, reactor, listener_tls)
    web = _listen_metrics(switch, config, reactor)
    store.start()
    if config.carriers:
        _start_delivery(switch, config, reactor, acceptor, carrier_tls)
        if config.http is not None or config.smtp is not None:
            switch.callbacks = _start_callbacks(channels)
    cluster.start()  # its first heartbeat takes the carrier bind slots: the links connect
    server.guard.start()  # the store's lockouts now, then every few seconds (a lift)
    metrics.watch(server, switch.carriers, cluster)
    metrics.refresh_depths(store, reactor)
    retention = config.optout.retention_days * 86400.0

    def purge():
        now = reactor.seconds()
        d = store.write(optouts.purge, now - retention)
        d.addCallback(lambda n: n and _log.info("{n} opt-outs past their retention", n=n))
        d.addErrback(lambda f: _log.failure("purging the opt-out list failed", f))
        d = store.write(replies.forget_stale_parts, now)
        d.addErrback(lambda f: _log.failure("dropping stale reply parts failed", f))

    LoopingCall(purge).start(PURGE, now=True)
    purging = _purge_messages(config, store, reactor)
    for what, port in ports:  # last: tests and scripts wait for these lines
        address = port.getHost()
        _log.info("{what} listening on {host}:{port}", what=what, host=address.host,
                  port=address.port)  # fmt: skip

    def shutdown():
        # SIGTERM (smsc/shutdown.py): no new binds, no new claims; new submits refused, the
        # ones handed to the store committed and answered; clients and carriers unbound;
        # what they answered meanwhile written down; the writer flushed. Every acknowledged
        # message was committed before its acknowledgement.
        if switch.dispatcher is not None:
            switch.dispatcher.stop()
            switch.outbox.stop()
        if switch.callbacks is not None:
            switch.callbacks.stop()
        cluster.stop()
        server.guard.stop()
        metrics.stop()
        if purging is not None:
            purging.stop()
        if web is not None:
            web.stopListening()
        wait = config.shutdown.unbind_wait
        d = gatherResults([port.stopListening() for _, port in ports])
        d.addCallback(lambda _: gatherResults([
            shutdown_steps.drain_clients(server, acceptor, store, reactor, wait),
            shutdown_steps.drain_carriers(switch.carriers, reactor, wait),
        ]))  # fmt: skip
        d.addBoth(lambda _: _last_records(switch))
        d.addBoth(lambda _: cluster.leave())
        d.addBoth(lambda _: store.stop())
        return d

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    return switch


def _last_records(switch: Switch) -> None:
    """What the carriers and clients answered while they unbound, to the writer."""
    if switch.dispatcher is not None:
        switch.dispatcher.flush()
        switch.outbox.flush()


def _start_delivery(
    switch: Switch, config: Config, reactor, acceptor: Acceptor, carrier_tls: dict
) -> None:
    """Carrier links, the dispatcher, receipts and the outbox."""
    store = switch.store
    marketing: dict[int, accounts.Account] = {}  # refreshed with the routes
    with store.engine.connect() as conn:  # before the first claim: no message slips through
        router = Router(config.carriers, config.routing.default, routing.all_routes(conn))
        _use_accounts(accounts.all_accounts(conn), marketing, switch.server)

    def settle() -> Settle:
        return Settle(
            reactor.seconds(), config.queue.outbox_retention, client_receipt, acceptor.optout_key
        )

    outbox = OutboxSender(store, reactor, switch.server, config.queue)

    def held(account_id: int, now: float) -> float | None:
        """When a promotional account's sending hours open, if they are closed now."""
        account = marketing.get(account_id)
        if account is None:
            return None
        try:
            opens = hours.of(account).next_open(now)
        except ValueError:  # hours that never open: held until it expires
            return math.inf
        return None if opens <= now else opens

    dispatcher = Dispatcher(
        store, reactor, [], router, config.queue, settle, routing.ported, receipts.normalise,
        held, switch.metrics,
    )  # fmt: skip

    def handling() -> replies.Handling:
        return replies.Handling(
            reactor.seconds(), acceptor.optout_key, config.queue.outbox_retention
        )

    def after_reply() -> None:
        dispatcher.wake()
        outbox.wake()

    inbound = Inbound(
        store, reactor, settle, dispatcher.flush, outbox.wake, handling, after_reply,
        switch.metrics,
    )  # fmt: skip
    cluster = switch.cluster
    inbound.hold_unknown = lambda: config.cluster.lease if cluster.live > 1 else 0.0
    carriers = [
        Carrier(c, reactor, dispatcher, inbound.deliver, switch.metrics, carrier_tls.get(c.name))
        for c in config.carriers
    ]
    dispatcher.attach(carriers)
    cluster.carriers = carriers
    switch.server.outbox = outbox
    acceptor.routable = router.routable
    acceptor.on_stored = dispatcher.wake
    switch.carriers, switch.dispatcher, switch.inbound, switch.outbox = (
        carriers, dispatcher, inbound, outbox,
    )  # fmt: skip

    reads = Quiet("reading the routes and accounts", _log)  # one line an outage

    def reload():
        d = store.read(routing.all_routes)
        d.addCallback(_use_routes, switch, acceptor)
        d.addCallbacks(lambda _: reads.succeeded(), reads.failed)
        d = store.read(accounts.all_accounts)
        d.addCallback(_use_accounts, marketing, switch.server)
        d.addCallbacks(lambda _: reads.succeeded(), reads.failed)

    LoopingCall(reload).start(RELOAD, now=False)
    if store.engine.dialect.name == "postgresql":  # other nodes' work wakes this one at once
        wakes = {notify.QUEUE: dispatcher.wake, notify.OUTBOX: outbox.wake}
        listener = notify.Listener(store.engine, reactor, wakes)
        listener.start()
        # Registered before start()'s own shutdown trigger: it stops before the store does.
        reactor.addSystemEventTrigger("before", "shutdown", listener.stop)
    dispatcher.start()
    outbox.start()


def _purge_messages(config: Config, store: Store, reactor) -> LoopingCall | None:
    """Once a day (and at the start), the texts and numbers of messages finished more than
    `[retention] messages_days` ago (smsc/store/retention.py); None when they are kept."""
    days = config.retention.messages_days
    if not days:
        return None

    def purge():
        now = reactor.seconds()
        before = now - days * message_retention.DAY
        d = message_retention.purge(store.write, before, now, lambda: loop.running)
        d.addCallback(_purged, days)
        d.addErrback(lambda f: _log.failure("purging finished messages failed", f))
        return d  # the next run waits for this one

    loop = LoopingCall(purge)
    loop.clock = reactor
    loop.start(RETENTION, now=True)
    return loop


def _purged(counts: dict[str, int], days: int) -> None:
    if any(counts.values()):
        _log.info(
            "purged the texts and numbers of {messages} messages and {outbox} outbox rows "
            "finished more than {days} days ago",
            messages=counts.get("messages", 0),
            outbox=counts.get("outbox", 0),
            days=days,
        )


def _tls(config: Config) -> tuple:
    """The TLS options of the SMPP listener (None without tls_port), of each carrier with
    tls = true, by name, and of the SMTP listener's STARTTLS (None without tls_cert): every TLS
    file read before anything starts."""
    smpp, smtp = config.smpp, config.smtp
    listener = None
    if smpp.tls_port is not None:
        listener = tls.server_options(smpp.tls_cert, smpp.tls_key, "smpp")
    carriers = {
        c.name: tls.client_options(c, f"carriers[{i}]")
        for i, c in enumerate(config.carriers)
        if c.tls
    }
    mail = None
    if smtp is not None and smtp.tls_cert is not None:
        mail = tls.server_options(smtp.tls_cert, smtp.tls_key, "smtp")
    return listener, carriers, mail


def _listen_channels(ctx: Context, smtp_tls) -> list:
    """The `[http]` listener (API and web page) and the `[smtp]` one (offering STARTTLS with
    `smtp_tls`), when configured."""
    ports = []
    if ctx.config.http is not None:
        from .channels import site

        http = ctx.config.http
        ports.append(("HTTP", ctx.clock.listenTCP(http.port, site.build(ctx), interface=http.host)))
    if ctx.config.smtp is not None:
        from .channels import mail

        smtp = ctx.config.smtp
        port = ctx.clock.listenTCP(smtp.port, mail.factory(ctx, smtp_tls), interface=smtp.host)
        ports.append(("SMTP", port))
    return ports


def _start_callbacks(ctx: Context) -> CallbackSender:
    """The receipts that go by HTTP callback or by email, from the outbox."""
    mailer = None
    if ctx.config.smtp is not None:
        from .channels import mail

        mailer = mail.receipt_mailer(ctx)
    config = ctx.config.http or HttpConfig()
    sender = CallbackSender(ctx.store, ctx.clock, config, mailer, metrics=ctx.metrics)
    sender.start()
    return sender


def _listen_smpp(server: SmppServer, config: Config, reactor, listener_tls) -> list:
    """The TLS listener (with tls_port) and the plain one (unless plain = false), the same
    server behind both; the plain one last, as its line is what tests wait for."""
    smpp, ports = config.smpp, []
    if listener_tls is not None:
        port = reactor.listenSSL(smpp.tls_port, server, listener_tls, interface=smpp.host)
        ports.append(("SMPP over TLS", port))
    if smpp.plain:
        ports.append(("SMPP", reactor.listenTCP(smpp.port, server, interface=smpp.host)))
    return ports


def _low_balance(metrics: Metrics, crossed: list[tuple[str, int, int]]) -> None:
    for system_id, balance, threshold in crossed:
        _log.warn(
            "account {account}: balance {balance} fell below its low-balance threshold {threshold}",
            account=system_id,
            balance=credit.show(balance),
            threshold=credit.show(threshold),
        )
        metrics.low_balances.labels(system_id).inc()


def _listen_metrics(switch: Switch, config: Config, reactor):
    """The `[metrics]` HTTP listener (/metrics, /healthz, /status); None without the section."""
    if config.metrics is None:
        return None
    web = site(switch.metrics, switch, reactor)
    port = reactor.listenTCP(config.metrics.port, web, interface=config.metrics.host)
    address = port.getHost()
    _log.info("metrics listening on {host}:{port}", host=address.host, port=address.port)
    return port


def _use_accounts(found: list[accounts.Account], marketing: dict, server: SmppServer) -> None:
    """Account changes made with the CLI reach the bound sessions and the dispatcher."""
    marketing.clear()
    marketing.update((a.id, a) for a in found if a.marketing)
    by_id = {a.id: a for a in found}
    for account_id, sessions in server.sessions.items():
        if account_id in by_id:
            for session in sessions:
                session.account = by_id[account_id]


def _use_routes(routes, switch: Switch, acceptor: Acceptor) -> None:
    router = switch.dispatcher.router.with_routes(routes)
    switch.dispatcher.router = router
    acceptor.routable = router.routable


def _start_simulators(config: Config, reactor) -> list:
    """The simulated carriers of `simulate = true`, in this process (the demo's)."""
    from .simulator import Simulator

    simulators = []
    for i, c in enumerate(config.carriers):
        if not c.simulate:
            continue
        options = None
        if c.tls:
            where = f"carriers[{i}].simulator"
            options = tls.server_options(c.simulator.tls_cert, c.simulator.tls_key, where)
        simulator = Simulator(
            c.name,
            reactor,
            c.simulator,
            receipt_id_format=c.simulator.receipt_id_format or None,
            receipt_tlvs=c.simulator.receipt_tlvs,
        )
        simulator.listen(reactor, c.host, c.port, options)
        if c.simulator.control_port:
            simulator.listen_control(reactor, "127.0.0.1", c.simulator.control_port)
        simulators.append(simulator)
    return simulators


def _ensure_accounts(store: Store, config: Config, now: float) -> None:
    with writing(store.engine) as conn:
        for account in config.accounts:
            if accounts.get(conn, account.system_id) is None:
                accounts.add(conn, account.system_id, account.password, now)
                _log.info("created account {system_id}", system_id=account.system_id)


def serve(config: Config, log_format: str | None = None) -> None:
    from twisted.internet import reactor

    options = config.logging
    observer = logs.observer(
        log_format or options.format, sys.stdout, options.level, options.reveal
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    start(config, reactor)
    shutdown_steps.install(reactor, config.shutdown.timeout)
    reactor.run()
