"""The web page (`/` on the `[http]` listener): an account's users log in with its system_id
and password, send a text to one number or a list (pasted or a CSV file), now or later, follow
their messages and receipts, cancel what waits, and see the size of their opt-out list.

Server-rendered HTML (smsc.channels.pages), sessions in a signed cookie
(smsc.channels.sessions), every send through the one accept path (`compose` + `submit`).
No phone number or text goes into a log line.
"""

from collections.abc import Awaitable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.exc import NoResultFound
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ..store import accounts, keys, messages, optouts
from ..store.accounts import Account
from ..store.db import writing
from . import Context, auth, compose, lists, pages, sessions, submit

_log = Logger()
MAX_NUMBERS = 10_000  # numbers in one send
_PAGE = 50  # messages a page
_STATES = {s.value for s in messages.State}
_LOGIN_REFUSED = "Wrong account or password, or the account may not log in now."
_HEADERS = {
    b"content-security-policy": b"default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
    b"cache-control": b"no-store",
}


def resource(ctx: Context) -> Resource:
    """The root of the `[http]` site: the page's paths; site.py mounts the API beside them."""
    with writing(ctx.store.engine) as conn:  # at start, before the store's threads run
        key = keys.secret(conn, sessions.KEY_NAME)
    web = Web(ctx, key)
    root = Resource()
    for name, page in {
        b"": Home,
        b"login": Login,
        b"logout": Logout,
        b"send": Send,
        b"messages": Messages,
        b"cancel": Cancel,
    }.items():
        root.putChild(name, page(web))
    root.putChild(b"page.css", Static(pages.CSS, b"text/css; charset=utf-8"))
    root.putChild(b"page.js", Static(pages.script(), b"text/javascript; charset=utf-8"))
    return root


class Web:
    """What the pages share: the switch, and the key that signs the sessions."""

    def __init__(self, ctx: Context, key: bytes):
        self.ctx = ctx
        self.key = key

    def now(self) -> float:
        return self.ctx.clock.seconds()

    async def session(self, request) -> tuple[Account, str] | None:
        """The account logged in by the request's cookie, and the cookie, if it holds."""
        value = (request.getCookie(sessions.COOKIE) or b"").decode("ascii", "replace")
        account_id = sessions.claimed(value, self.now())
        if account_id is None:
            return None
        account = await self.ctx.store.read(_account, account_id)
        if account is None or not account.enabled:
            return None
        if not sessions.valid(self.key, value, account):
            return None
        return account, value

    def set_cookie(self, request, value: str, max_age: int) -> None:
        secure = request.isSecure() or self.ctx.config.http.public_url.startswith("https:")
        request.addCookie(
            sessions.COOKIE,
            value.encode(),
            max_age=str(max_age),
            path=b"/",
            httpOnly=True,
            secure=secure,
            sameSite="strict",
        )


def _account(conn, account_id: int) -> Account | None:
    try:
        return accounts.by_id(conn, account_id)
    except NoResultFound:
        return None


def _arg(request, name: bytes) -> str:
    values = request.args.get(name)
    return values[0].decode("utf-8", "replace") if values else ""


def _respond(request, work: Awaitable[bytes | None]) -> int:
    """Render `work` (an HTML page, or None when it redirected) once it is done."""
    for name, value in _HEADERS.items():
        request.setHeader(name, value)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    gone = []
    request.notifyFinish().addErrback(gone.append)  # the client left: nothing to write

    def write(body: bytes | None) -> None:
        if not gone:
            if body:
                request.write(body)
            request.finish()

    def failed(failure) -> None:
        _log.failure("the web page failed", failure)
        if not gone:
            request.setResponseCode(500)
            request.write(pages.page("Error", "<p>Something went wrong; try again.</p>"))
            request.finish()

    ensureDeferred(work).addCallbacks(write, failed)
    return NOT_DONE_YET


def _redirect(request, to: bytes) -> None:
    request.setResponseCode(303)
    request.setHeader(b"location", to)


class Page(Resource):
    """A page for a logged-in user: without a session, GET goes to the login form and POST is
    forbidden; a POST must carry the session's CSRF token."""

    isLeaf = True

    def __init__(self, web: Web):
        super().__init__()
        self.web = web

    def render_GET(self, request) -> int:
        return _respond(request, self._get(request))

    def render_POST(self, request) -> int:
        return _respond(request, self._post(request))

    async def _get(self, request) -> bytes | None:
        found = await self.web.session(request)
        if found is None:
            return _redirect(request, b"/login")
        account, cookie = found
        return await self.get(request, account, sessions.csrf_token(self.web.key, cookie))

    async def _post(self, request) -> bytes | None:
        found = await self.web.session(request)
        if found is None:
            request.setResponseCode(403)
            return pages.page("Logged out", '<p>Your session ended: <a href="/login">log in</a>.')
        account, cookie = found
        if not sessions.csrf_ok(self.web.key, cookie, _arg(request, b"csrf")):
            request.setResponseCode(403)
            return pages.page("Form expired", "<p>Reload the page and try again.</p>")
        return await self.post(request, account, sessions.csrf_token(self.web.key, cookie))

    async def get(self, request, account: Account, csrf: str) -> bytes | None:
        return _redirect(request, b"/")

    async def post(self, request, account: Account, csrf: str) -> bytes | None:
        request.setResponseCode(405)
        return pages.page("Not here", "<p>Nothing to send to this address.</p>", account, csrf)


class Home(Page):
    async def get(self, request, account: Account, csrf: str) -> bytes:
        return await self.form(account, csrf)

    async def form(self, account: Account, csrf: str, error: str = "", form=None) -> bytes:
        opted_out = await self.web.ctx.store.read(optouts.count, account.id)
        return pages.send_form(account, csrf, opted_out, _only_sender(account), error, form)


class Send(Home):
    async def get(self, request, account: Account, csrf: str) -> None:
        return _redirect(request, b"/")

    async def post(self, request, account: Account, csrf: str) -> bytes:
        form = {k: _arg(request, k.encode()) for k in ("numbers", "text", "sender", "send_at")}
        upload = (request.args.get(b"file") or [b""])[0]
        numbers = lists.pasted(form["numbers"]) + (lists.from_csv(upload) if upload else [])
        sender = form["sender"].strip() or _only_sender(account)
        error = _check(form, numbers, sender)
        if not error:
            try:
                params, tlvs = compose(form["text"], sender, _send_at(form["send_at"], account))
            except (ValueError, OverflowError):  # not a time, or not one SMPP can carry
                error = "The send time is not a date and time between 2000 and 2099."
        if error:
            request.setResponseCode(400)
            return await self.form(account, csrf, error, form)
        _, outcomes = await submit(self.web.ctx.acceptor, account, numbers, params, tlvs)
        accepted = sum(o.id is not None for o in outcomes)
        _log.info(
            "web: {who} sent {n} message(s), {refused} refused",
            who=account.system_id,
            n=accepted,
            refused=len(outcomes) - accepted,
        )
        return pages.sent(account, csrf, outcomes, form["send_at"].replace("T", " "))


def _only_sender(account: Account) -> str:
    """The sender of a form that names none: the account's, when it registered only one (as
    email to SMS does)."""
    return next(iter(account.senders)) if len(account.senders) == 1 else ""


def _check(form: dict[str, str], numbers: list[str], sender: str) -> str:
    """What is wrong with a send form, in words (or "")."""
    if not numbers:
        return "Give at least one number, or a CSV file of them."
    if len(numbers) > MAX_NUMBERS:
        return f"At most {MAX_NUMBERS:,} numbers at once ({len(numbers):,} given)."
    if not form["text"]:
        return "Write the text to send."
    if not sender:
        return "Give a sender: a name (up to 11 letters and digits) or a number."
    return ""


def _send_at(value: str, account: Account) -> float | None:
    """A datetime-local value (the account's wall clock) as epoch seconds; None: now."""
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(account.timezone)).timestamp()


class Messages(Page):
    async def get(self, request, account: Account, csrf: str) -> bytes:
        state = _arg(request, b"state")
        if state not in _STATES:
            state = ""
        before = _arg(request, b"before")
        rows = await self.web.ctx.store.read(
            messages.listing,
            account.id,
            [state] if state else None,
            _PAGE + 1,  # one more: is there an older page?
            int(before) if _is_id(before) else None,
        )
        older = rows[_PAGE - 1].id if len(rows) > _PAGE else None
        notice = {
            "1": "The message was cancelled.",
            "0": "The message could not be cancelled: it has left already.",
        }.get(_arg(request, b"cancelled"), "")
        return pages.listing(account, csrf, rows[:_PAGE], state, older, notice)


def _is_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 18  # within a BIGINT


class Cancel(Page):
    async def post(self, request, account: Account, csrf: str) -> None:
        message_id = _arg(request, b"id")
        cancelled = 0
        if _is_id(message_id):
            cancelled = await self.web.ctx.store.write(
                messages.cancel, account.id, self.web.now(), message_id=int(message_id)
            )
        return _redirect(request, b"/messages?cancelled=%d" % min(cancelled, 1))


class Login(Page):
    """The one page without a session."""

    async def _get(self, request) -> bytes:
        return pages.login()

    async def _post(self, request) -> bytes | None:
        system_id, password = _arg(request, b"system_id"), _arg(request, b"password")
        host = getattr(request.getClientAddress(), "host", "?")
        account = await auth.login(self.web.ctx, system_id, password, host)
        if account is None:
            request.setResponseCode(401)
            return pages.login(_LOGIN_REFUSED, system_id)
        self.web.set_cookie(request, sessions.issue(self.web.key, account, self.web.now()),
                            sessions.LIFETIME)  # fmt: skip
        return _redirect(request, b"/")


class Logout(Page):
    async def post(self, request, account: Account, csrf: str) -> None:
        self.web.set_cookie(request, "", 0)
        return _redirect(request, b"/login")


class Static(Resource):
    """The stylesheet and the script, the same for everyone."""

    isLeaf = True

    def __init__(self, body: bytes, content_type: bytes):
        super().__init__()
        self.body = body
        self.content_type = content_type

    def render_GET(self, request) -> bytes:
        request.setHeader(b"content-type", self.content_type)
        request.setHeader(b"cache-control", b"max-age=3600")
        return self.body
