"""The HTTP API under /api/v1/ (README "HTTP API"; described by openapi.json, served beside it):
send a text to one number or a list, now or later; follow a message, list the account's
messages, cancel one that waits. JSON in and out, every error too (never Twisted's HTML pages).

A request is authenticated (smsc.channels.auth), then goes through the one accept path like an
SMPP submit (smsc.channels.submit): each destination becomes a message with its own id. The
status codes say what became of the request as a whole: 400 a request that does not match
the document, 422 a message the switch refuses (every destination refused, a bad sender, bad
times), 402 refused for credit only, 429 over the account's throughput cap, 503 when the store
cannot take messages for now.
"""

import json
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ..protocol.constants import Status
from ..store import messages
from ..store.messages import FINAL, Message, State
from . import Context, compose, reason, submit
from .auth import authenticate_request

_log = Logger()
MAX_BODY = 1_000_000  # octets of a request body
MAX_DESTINATIONS = 10_000  # numbers in one request
MAX_CALLBACK = 500  # characters of a callback URL (messages.callback)
MAX_PAGE = 500  # messages in one page of the listing
PAGE = 50
RETRY_STORE = 5  # seconds a client waits before it tries again when the store is unavailable
_FIELDS = frozenset({"to", "text", "from", "send_at", "valid_until", "validity", "callback_url"})
_WHOLE = {Status.RNOCREDIT: 402, Status.RTHROTTLED: 429, Status.RMSGQFUL: 503, Status.RSYSERR: 500}
# Seconds to wait before trying again: the cap is per second (a second's worth comes back).
_RETRY_AFTER = {Status.RTHROTTLED: 1, Status.RMSGQFUL: RETRY_STORE}
_CHALLENGES = ['Basic realm="smsc", charset="UTF-8"', 'Bearer realm="smsc"']


class Answer(NamedTuple):
    code: int
    body: dict[str, Any]
    headers: dict[str, list[str]] = {}


class ApiError(Exception):
    """A request answered with an error: `{"error": code word, "detail": for people, …}`."""

    def __init__(self, code: int, error: str, detail: str, headers=None, **more):
        super().__init__(detail)
        self.answer = Answer(code, {"error": error, "detail": detail, **more}, headers or {})


def _bad(field: str, detail: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{field}: {detail}", field=field)


def _refused(status: int, **more) -> ApiError:
    """A request the accept path refused as a whole."""
    wait = _RETRY_AFTER.get(status)
    headers = {} if wait is None else {"Retry-After": [str(wait)]}
    return ApiError(
        _WHOLE.get(status, 422), Status(status).name, reason(status), headers,
        status=int(status), **more,
    )  # fmt: skip


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no such message for this account")


def resource(ctx: Context) -> Resource:
    return Api(ctx)


class Api(Resource):
    """Everything under /api/v1/, routed here by path and method (a leaf: Twisted's own
    routing would answer unknown paths and methods with HTML)."""

    isLeaf = True

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        document = json.loads(resources.files(__package__).joinpath("openapi.json").read_text())
        public_url = ctx.config.http.public_url if ctx.config.http else ""
        if public_url:
            document["servers"] = [{"url": public_url.rstrip("/") + "/api/v1"}]
        self.document = document

    def render(self, request):
        Deferred.fromCoroutine(self._answer(request))
        return NOT_DONE_YET

    def _route(self, request):
        """The handler of a request, and whether it needs an account."""
        path = [segment.decode("utf-8", "replace") for segment in request.postpath]
        if path and path[-1] == "" and len(path) > 1:
            path.pop()  # a trailing slash
        method = "GET" if request.method == b"HEAD" else request.method.decode("latin-1")
        if path == ["openapi.json"]:
            handlers, public = {"GET": self.openapi}, True
        elif path == ["messages"]:
            handlers, public = {"GET": self.listing, "POST": self.send}, False
        elif len(path) == 2 and path[0] == "messages":
            message_id = _message_id(path[1])
            handlers = {"GET": partial(self.show, message_id),
                        "DELETE": partial(self.cancel, message_id)}  # fmt: skip
            public = False
        else:
            raise ApiError(404, "not_found", "no such resource: see /api/v1/openapi.json")
        if method not in handlers:
            allowed = ", ".join(sorted(handlers))
            raise ApiError(405, "method_not_allowed", f"allowed: {allowed}", {"Allow": [allowed]})
        return handlers[method], public

    async def _answer(self, request) -> None:
        gone = []
        request.notifyFinish().addErrback(gone.append)  # the client left: nothing to write
        operation = "unknown"
        try:
            handler, public = self._route(request)
            operation = getattr(handler, "func", handler).__name__
            account = None
            if not public:
                account = await authenticate_request(self.ctx, request)
                if account is None:
                    raise ApiError(
                        401, "unauthorized", "HTTP Basic with the account's system_id and "
                        "password, or a bearer token", {"WWW-Authenticate": _CHALLENGES},
                    )  # fmt: skip
            answer = await handler(request, account)
        except ApiError as e:
            answer = e.answer
        except Exception:
            _log.failure("HTTP API request failed")
            answer = Answer(500, {"error": "internal", "detail": "the switch failed: try again"})
        if self.ctx.metrics is not None:
            self.ctx.metrics.http_requests.labels(operation, str(answer.code)).inc()
        if not gone:
            _write(request, answer)

    # -- the handlers ------------------------------------------------------------------------

    async def openapi(self, request, account) -> Answer:
        return Answer(200, self.document)

    async def send(self, request, account) -> Answer:
        """POST /messages: one message for each number; 201 when any was accepted."""
        data = _json_body(request)
        now = self.ctx.clock.seconds()
        numbers, text, sender, callback = _submission(data)
        send_at, valid_until = _times(data, now, account.max_validity)
        try:
            params, tlvs = compose(text, sender, send_at, valid_until, receipt=bool(callback))
        except ValueError:  # a send time beyond what SMPP times can say (2099)
            raise _refused(Status.RINVSCHED) from None
        status, outcomes = await submit(
            self.ctx.acceptor, account, numbers, params, tlvs, callback=callback
        )
        listed = [o.as_dict() for o in outcomes]
        accepted = sum(1 for o in outcomes if o.id is not None)
        if not accepted:
            raise _refused(status, messages=listed)
        body = {"messages": listed, "accepted": accepted, "refused": len(outcomes) - accepted}
        return Answer(201, body)

    async def show(self, message_id: int, request, account) -> Answer:
        """GET /messages/{id}: the account's message, its state and its receipt."""
        found = await self.ctx.store.read(_own, account.id, message_id)
        if found is None:
            raise _not_found()
        return Answer(200, _message(found))

    async def cancel(self, message_id: int, request, account) -> Answer:
        """DELETE /messages/{id}: cancelled while it waits; 409 once it has left."""
        if await self.ctx.store.read(_own, account.id, message_id) is None:
            raise _not_found()
        now = self.ctx.clock.seconds()
        cancelled = await self.ctx.store.write(
            messages.cancel, account.id, now, message_id=message_id
        )
        found = await self.ctx.store.read(_own, account.id, message_id)
        if not cancelled:
            raise ApiError(409, "not_waiting", f"the message is {found.state}: it cannot be "
                           "cancelled any more", message=_message(found))  # fmt: skip
        return Answer(200, _message(found))

    async def listing(self, request, account) -> Answer:
        """GET /messages: the account's messages, newest first, a page at a time."""
        states, limit, before = _listing_query(request.args)
        rows = await self.ctx.store.read(messages.listing, account.id, states, limit + 1, before)
        page = rows[:limit]
        more = len(rows) > limit
        return Answer(200, {"messages": [_message(m) for m in page],
                            "next": str(page[-1].id) if more else None})  # fmt: skip


# -- reading requests ------------------------------------------------------------------------


_ID_END = 2**63  # ids are below: a BIGINT on PostgreSQL, an INTEGER on SQLite


def _message_id(text: str) -> int:
    """A message id in a path: decimal, as the store numbers them; anything else names no
    message (404)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) >= _ID_END:
        raise _not_found()
    return int(text)


def _json_body(request) -> dict:
    content_type = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # Also what keeps a cross-site HTML form (which cannot send this type without the
        # browser asking first) from posting with credentials the browser remembers.
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    request.content.seek(0)
    raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body is over {MAX_BODY} octets")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise _bad(unknown[0], "unknown field")
    return data


def _submission(data: dict) -> tuple[list[str], str, str, str | None]:
    """The numbers, text, sender and callback URL of a request, checked for their types."""
    if "to" not in data:
        raise _bad("to", "required: a phone number or a list of them")
    to = data["to"]
    numbers = [to] if isinstance(to, str) else to
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise _bad("to", "a phone number (a string) or a list of them")
    if not 1 <= len(numbers) <= MAX_DESTINATIONS:
        raise _bad("to", f"1 to {MAX_DESTINATIONS} numbers")
    text = data.get("text")
    if not isinstance(text, str) or not text:
        raise _bad("text", "required: a non-empty string")
    sender = data.get("from")
    if not isinstance(sender, str) or not sender:
        raise _bad("from", "required: a sender name or number")
    callback = data.get("callback_url")
    if callback is not None or "callback_url" in data:
        callback = _callback_url(callback)
    return numbers, text, sender, callback


def _callback_url(value) -> str:
    if not isinstance(value, str) or len(value) > MAX_CALLBACK:
        raise _bad("callback_url", f"an http(s) URL of at most {MAX_CALLBACK} characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise _bad("callback_url", "not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad("callback_url", "an http:// or https:// URL with a host")
    return value


def _times(data: dict, now: float, max_validity: int) -> tuple[float | None, float | None]:
    """send_at and valid_until as epochs: a send time in the past is now (None); `validity`
    (seconds) counts from the send time; a validity is cut at the account's maximum (as the
    accept path would cut it) so that a far one is not refused for its year."""
    send_at = _instant(data, "send_at")
    if send_at is not None and send_at <= now:
        send_at = None
    due = now if send_at is None else send_at
    valid_until = _instant(data, "valid_until")
    if "validity" in data:
        validity = data["validity"]
        if valid_until is not None:
            raise _bad("validity", "give valid_until or validity, not both")
        if type(validity) is not int or validity < 1:
            raise _bad("validity", "a whole number of seconds, 1 or more")
        valid_until = due + min(validity, max_validity)
    if valid_until is not None:
        if valid_until <= due:
            raise _refused(Status.RINVEXPIRY)
        valid_until = min(valid_until, due + max_validity)
    return send_at, valid_until


def _instant(data: dict, field: str) -> float | None:
    if field not in data:
        return None
    value = data[field]
    example = "an ISO 8601 date and time with its UTC offset, like 2026-01-31T12:00:00+01:00"
    if not isinstance(value, str):
        raise _bad(field, example)
    try:
        when = datetime.fromisoformat(value.upper())  # RFC 3339 allows a lower case t and z
        if when.tzinfo is None:
            raise _bad(field, example + " (the offset is missing)")
        return when.timestamp()
    except (ValueError, OverflowError):
        raise _bad(field, example) from None


def _listing_query(args: dict[bytes, list[bytes]]) -> tuple[list[str] | None, int, int | None]:
    """The states (`status`, repeated or comma-separated), page size and cursor of a listing."""
    try:
        query = {k.decode(): [v.decode() for v in vs] for k, vs in args.items()}
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_field", "the query is not UTF-8") from None
    states = [s.strip().upper() for v in query.get("status", []) for s in v.split(",")]
    known = {s.value for s in State}
    for state in states:
        if state not in known:
            raise _bad("status", f"one of {', '.join(sorted(known))}")
    limit = _query_number(query, "limit", PAGE)
    if not 1 <= limit <= MAX_PAGE:
        raise _bad("limit", f"1 to {MAX_PAGE}")
    before = _query_number(query, "before", None)
    if before is not None:  # a cursor past every id reads from the newest
        before = min(before, _ID_END - 1)
    return states or None, limit, before


def _query_number(query: dict[str, list[str]], field: str, default):
    values = query.get(field)
    if not values:
        return default
    text = values[-1]
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise _bad(field, "a whole number")
    return int(text)


# -- answers ---------------------------------------------------------------------------------


def _own(conn, account_id: int, message_id: int) -> Message | None:
    """The account's message of this id (a submit_multi's: its first row, in its overall
    state), or None when there is none or it is another account's."""
    rows = [m for m in messages.by_client_id(conn, message_id) if m.account_id == account_id]
    if not rows:
        return None
    state, updated_at = messages.overall(rows)
    return replace(rows[0], state=state, updated_at=updated_at)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _message(m: Message) -> dict[str, Any]:
    final = m.state in FINAL
    return {
        "id": str(m.id),
        "to": m.destination,
        "from": m.source,
        "state": str(m.state),
        "submitted_at": _iso(m.submitted_at),
        "send_at": _iso(m.due_at),
        "valid_until": _iso(m.expires_at),
        "updated_at": _iso(m.updated_at),
        "error": m.error,
        # What a receipt would say, whichever carrier took it (or none did): the final state
        # and when it was reached.
        "receipt": {"state": str(m.state), "done_at": _iso(m.updated_at)} if final else None,
        "callback_url": m.callback,
    }


def _write(request, answer: Answer) -> None:
    data = json.dumps(answer.body, separators=(",", ":")).encode()
    request.setResponseCode(answer.code)
    request.setHeader("Content-Type", "application/json")
    request.setHeader("Content-Length", str(len(data)))
    request.setHeader("Cache-Control", "no-store")
    for name, values in answer.headers.items():
        request.responseHeaders.setRawHeaders(name, values)
    request.write(data)
    request.finish()
