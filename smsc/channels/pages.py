"""The web page's HTML: plain forms and tables that work without JavaScript (a script only
counts characters and parts as one types). Everything that comes from the store or the user
goes through `html.escape`."""

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from html import escape
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from ..protocol import text as sms_text
from ..protocol.constants import ESM_UDHI
from ..store.accounts import Account
from ..store.messages import FINAL, WAITING, Message, State
from . import Outcome

PREVIEW = 40  # characters of a text shown in the messages table

CSS = b"""
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #222; background: #f6f6f4; }
header { background: #234; color: #fff; padding: .6em 1.2em; display: flex; gap: 1.2em;
  align-items: center; }
header a, header button { color: #fff; }
header .who { margin-left: auto; }
header form { display: inline; }
header button { background: none; border: 1px solid #fff8; border-radius: 3px; cursor: pointer; }
main { max-width: 74em; margin: 1.2em auto; padding: 0 1.2em; }
label { display: block; margin: .8em 0 .2em; font-weight: 600; }
input[type=text], input[type=password], textarea, select, input[type=datetime-local] {
  font: inherit; padding: .3em; border: 1px solid #999; border-radius: 3px; }
textarea { width: 100%; box-sizing: border-box; }
button.main { margin-top: 1em; font: inherit; padding: .4em 1.4em; background: #234;
  color: #fff; border: 0; border-radius: 3px; cursor: pointer; }
.hint { color: #666; font-size: 90%; }
.error { background: #fdd; border: 1px solid #c66; padding: .5em .8em; }
.notice { background: #dfd; border: 1px solid #6a6; padding: .5em .8em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .3em .5em; border-bottom: 1px solid #ddd;
  vertical-align: top; }
.DELIVERED { color: #070; } .UNDELIVERABLE, .REJECTED, .EXPIRED { color: #a00; }
.DELETED { color: #777; }
time { white-space: nowrap; }
form.filter label { display: inline; margin-right: .4em; }
"""


_COUNTER = """
function count(text) {
  let septets = 0;
  for (const c of text) {
    if (!(c in SEPTETS)) {
      const units = text.length;  // UTF-16 code units, as UCS-2 carries them
      return [units, "UCS-2", units <= 70 ? 1 : Math.ceil(units / 67)];
    }
    septets += SEPTETS[c];
  }
  return [septets, "GSM", septets <= 160 ? 1 : Math.ceil(septets / 153)];
}
document.addEventListener("DOMContentLoaded", () => {
  const text = document.getElementById("text"), shown = document.getElementById("count");
  if (!text || !shown) return;
  const update = () => {
    const [n, coding, parts] = count(text.value);
    shown.textContent = `${n} characters (${coding}), ${parts} SMS`;
  };
  text.addEventListener("input", update);
  update();
});
"""


@functools.cache
def script() -> bytes:
    """The counter under the text: characters, and the parts they take in the coding the
    switch will choose (GSM 03.38 when every character is in it, else UCS-2)."""
    latin_and_greek = map(chr, [*range(0x250), *range(0x391, 0x3AA), 0x20AC])
    septets = {c: len(e) for c in latin_and_greek if (e := sms_text.gsm_encode(c)) is not None}
    return f"const SEPTETS = {json.dumps(septets, ensure_ascii=False)};\n{_COUNTER}".encode()


def page(title: str, body: str, account: Account | None = None, csrf: str = "") -> bytes:
    """A whole document; with the account's menu when someone is logged in."""
    menu = ""
    if account is not None:
        menu = (
            '<a href="/">Send</a><a href="/messages">Messages</a>'
            f'<span class="who">{escape(account.system_id)}</span>'
            f'<form method="post" action="/logout">{_csrf(csrf)}'
            '<button type="submit">Log out</button></form>'
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · smsc</title>"
        '<link rel="stylesheet" href="/page.css"><script src="/page.js" defer></script>'
        f"</head><body><header><strong>smsc</strong>{menu}</header>"
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    ).encode()


def _csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(token)}">'


def _error(message: str) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>' if message else ""


def login(error: str = "", system_id: str = "") -> bytes:
    body = (
        f"{_error(error)}"
        '<form method="post" action="/login">'
        '<label for="system_id">Account (system_id)</label>'
        f'<input type="text" id="system_id" name="system_id" value="{escape(system_id)}" '
        'autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" '
        'autocomplete="current-password" required>'
        '<div><button class="main" type="submit">Log in</button></div></form>'
    )
    return page("Log in", body)


def send_form(
    account: Account,
    csrf: str,
    opted_out: int,
    default_sender: str,
    error: str = "",
    form: dict | None = None,
) -> bytes:
    """The home page: the form to send a text, and the size of the account's opt-out list.
    `default_sender`: the one used when the field is left empty; `form`: what was typed,
    given back with an error."""
    form = form or {}
    senders = "".join(f'<option value="{escape(s)}">' for s in sorted(account.senders))
    body = (
        f'<p id="optouts">Opt-out list: <strong>{opted_out}</strong> '
        f"number{'s' if opted_out != 1 else ''} replied STOP to your messages; "
        "they are refused from now on.</p>"
        f"{_error(error)}"
        '<form method="post" action="/send" enctype="multipart/form-data">'
        f"{_csrf(csrf)}"
        '<label for="numbers">To</label>'
        f'<textarea id="numbers" name="numbers" rows="4">{escape(form.get("numbers", ""))}'
        "</textarea>"
        '<p class="hint">One number, or a list: one a line, or separated by commas, semicolons '
        "or spaces. International (+33612345678) or French (0612345678) form.</p>"
        '<label for="file">Or a CSV file</label>'
        '<input type="file" id="file" name="file" accept=".csv,.txt,text/csv,text/plain">'
        '<p class="hint">Numbers in the column headed number, phone, to, numéro or téléphone, '
        "else in the first column. Up to 10,000 numbers at once.</p>"
        '<label for="text">Text</label>'
        f'<textarea id="text" name="text" rows="5" required>{escape(form.get("text", ""))}'
        '</textarea><p class="hint" id="count" aria-live="polite"></p>'
        '<label for="sender">Sender</label>'
        f'<input type="text" id="sender" name="sender" maxlength="20" list="senders" '
        f'value="{escape(form.get("sender", ""))}"><datalist id="senders">{senders}</datalist>'
        '<p class="hint">A name (up to 11 letters and digits) or a number'
        f"{'; empty: ' + escape(default_sender) if default_sender else ''}.</p>"
        '<label for="send_at">Send at (optional)</label>'
        f'<input type="datetime-local" id="send_at" name="send_at" '
        f'value="{escape(form.get("send_at", ""))}">'
        f'<p class="hint">Your time zone: {escape(account.timezone)}. Empty: now.</p>'
        '<div><button class="main" type="submit">Send</button></div></form>'
    )
    return page("Send a text", body, account, csrf)


def sent(account: Account, csrf: str, outcomes: list[Outcome], send_at: str) -> bytes:
    """What became of each number of a send."""
    accepted = [o for o in outcomes if o.id is not None]
    refused = [o for o in outcomes if o.id is None]
    when = f" to be sent at {escape(send_at)}" if send_at else ""
    body = (
        f'<p class="notice" id="accepted"><strong>{len(accepted)}</strong> '
        f"message{'s' if len(accepted) != 1 else ''} accepted{when}; "
        f'<strong id="refused">{len(refused)}</strong> refused. '
        'Follow them on the <a href="/messages">messages</a> page.</p>'
    )
    if refused:
        body += "<h2>Refused</h2>" + _table(
            ("Number", "Why"),
            ((escape(o.to), escape(o.as_dict()["reason"])) for o in refused),
            "refused-list",
        )
    if accepted:
        body += "<h2>Accepted</h2>" + _table(
            ("Number", "Message id"),
            ((escape(o.to), escape(str(o.id))) for o in accepted),
            "accepted-list",
        )
    return page("Sent", body, account, csrf)


def listing(
    account: Account,
    csrf: str,
    rows: list[Message],
    state: str,
    older: int | None,
    notice: str = "",
) -> bytes:
    """The account's messages, newest first, with a filter by state and a link to older ones."""
    zone = ZoneInfo(account.timezone)
    options = "".join(
        f'<option value="{s}"{" selected" if s == state else ""}>{s or "all"}</option>'
        for s in ("", *State)
    )
    body = (
        (f'<p class="notice" role="status">{escape(notice)}</p>' if notice else "")
        + '<form class="filter" method="get" action="/messages"><label for="state">State</label>'
        f'<select id="state" name="state">{options}</select> '
        '<button type="submit">Show</button></form>'
        f'<p class="hint">Times in {escape(account.timezone)}.</p>'
    )
    body += _table(
        ("Id", "To", "From", "Text", "State", "Submitted", "Send at", "Done at", ""),
        (_row(m, zone, csrf) for m in rows),
        "messages",
    )
    if not rows:
        body += "<p>No messages.</p>"
    if older is not None:
        query = urlencode({"before": older, **({"state": state} if state else {})})
        body += f'<p><a id="older" href="/messages?{escape(query)}">Older messages</a></p>'
    return page("Messages", body, account, csrf)


def _row(m: Message, zone: ZoneInfo, csrf: str) -> tuple[str, ...]:
    cancel = ""
    if m.state in WAITING:
        cancel = (
            f'<form method="post" action="/cancel">{_csrf(csrf)}'
            f'<input type="hidden" name="id" value="{m.id}">'
            '<button type="submit">Cancel</button></form>'
        )
    error = f" (error {m.error})" if m.error else ""
    return (
        str(m.id),
        escape(m.destination),
        escape(m.source),
        escape(_preview(m)),
        f'<span class="{escape(m.state)}">{escape(m.state)}{error}</span>',
        _time(m.submitted_at, zone),
        _time(m.due_at, zone),
        _time(m.updated_at, zone) if m.state in FINAL else "",  # when its receipt came
        cancel,
    )


def _preview(m: Message) -> str:
    body = m.body
    if m.esm_class & ESM_UDHI and body:  # a part the client cut itself: skip its header
        body = body[body[0] + 1 :]
    text = sms_text.decode(m.data_coding, body)
    if text is None:
        return "(binary)"
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _time(t: float, zone: ZoneInfo) -> str:
    moment = datetime.fromtimestamp(t, zone)
    return f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M:%S}</time>'


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], table_id: str) -> str:
    """A table of cells that are HTML already (escaped by the caller)."""
    heads = "".join(f"<th>{escape(h)}</th>" for h in head)
    lines = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{heads}</tr></thead><tbody>{lines}</tbody></table>'
