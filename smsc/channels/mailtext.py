"""What a mail says to the email-to-SMS gateway (README, "Email to SMS"), read without I/O.

- The text: the mail's text/plain part (in a multipart mail, the one a reader would show),
  decoded from its charset and transfer encoding; a mail with only HTML gives the HTML's text
  (tags dropped, paragraphs and line breaks kept). Then what a reply or a signature adds is
  cut: the signature (a line "-- " and all after it), the quoted text (lines starting with
  ">", and the "On … wrote:" / "Le … a écrit :" line before them), a forwarded original
  ("-----Original Message-----" and all after); trailing blanks are trimmed.
- The subject carries options, and nothing of it is sent: `at 2026-12-24 18:00` (or "à",
  ISO 8601 with "T" or a space, seconds and an offset optional; without an offset, in the
  account's time zone) is the send time; `from SHOP` picks one of the account's registered
  senders. Other words are ignored.
"""

import re
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from .. import addresses

_SIGNATURE = re.compile(r"^--[ \t]?$")
_ORIGINAL = re.compile(r"^-{3,}\s*(original message|message d'origine)\s*-{3,}$", re.I)
# The line a mail client writes above the text it quotes, in English and in French; a long one
# is often wrapped over two lines ("On Mon, 1 Jun 2026 at 10:00, Ann <ann@x.fr>" / "wrote:").
_ATTRIBUTION = re.compile(r"(\bwrote|\ba\s+écrit)\s*:$", re.I)
_ATTRIBUTION_START = re.compile(r"^(on|le)\s", re.I)
_SEND_TIME = re.compile(
    r"(?:^|\s)(?:at|à)\s+(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"(?=\s|$)",
    re.I,
)
_FROM = re.compile(r"(?:^|\s)from\s+(\+?[0-9A-Za-z]{1,15})(?=\s|$)", re.I)
_BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
_HIDDEN = frozenset({"style", "script", "head", "title"})


class MailError(ValueError):
    """A mail that cannot become an SMS; its text says why, for the sender."""


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def sms_text(mail: EmailMessage) -> str:
    """The text to send (see the module's doc); MailError when it has none."""
    part = mail.get_body(preferencelist=("plain", "html"))
    if part is None:
        raise MailError("the mail has no text part")
    try:
        text = part.get_content()
    except (LookupError, UnicodeError):  # a charset Python does not know
        raise MailError("the mail's text is in a charset that cannot be read") from None
    if part.get_content_subtype() == "html":
        text = html_text(text)
    text = strip_reply(text)
    if not text:
        raise MailError("the mail's text is empty (once its signature and quotes are cut)")
    return text


def strip_reply(text: str) -> str:
    """The text without signature, quotes and their attribution line, forwarded original."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _SIGNATURE.match(line) or _ORIGINAL.match(line.strip()):
            break
        if line.lstrip().startswith(">"):
            _drop_attribution(kept)
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


def _drop_attribution(kept: list[str]) -> None:
    """Drop the "… wrote:" line above a quote (and its first half when it was wrapped)."""
    while kept and not kept[-1].strip():
        kept.pop()
    if kept and _ATTRIBUTION.search(kept[-1]):
        last = kept.pop()
        if kept and not _ATTRIBUTION_START.match(last) and _ATTRIBUTION_START.match(kept[-1]):
            kept.pop()


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.hidden:
            self.out.append(re.sub(r"\s+", " ", data))  # HTML's white space is one space


def html_text(html: str) -> str:
    """The text of an HTML body: tags and hidden parts dropped, blocks on lines of their own."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.out).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def send_time(subject: str, zone: str) -> float | None:
    """The send time the subject names (epoch seconds), None when it names none; MailError
    when it names one that is not a date."""
    found = _SEND_TIME.search(subject)
    if found is None:
        return None
    try:
        when = datetime.fromisoformat(found.group(1))
    except ValueError:
        raise MailError(f"the send time {found.group(1)!r} in the subject is not a date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(zone))
    return when.timestamp()


def named_sender(subject: str, senders: frozenset[str]) -> str | None:
    """The registered sender the subject names with `from NAME` (NAME as registered, any case;
    a number in any form that normalises to it), else None: "news from Paris" names none."""
    for found in _FROM.finditer(subject):
        word = found.group(1)
        key = addresses.sender(word, 0 if word.removeprefix("+").isdigit() else 5)
        if key in senders:
            return key
    return None
