"""Log observers for `smsc serve`: one line per event, as text or as JSON, with phone numbers
masked and message texts withheld.

`observer("text", out)` writes lines such as

    2024-05-01T10:00:00.123Z info [smsc.server] bound demo from 127.0.0.1:50312 as transceiver

and a failure on the same line, its traceback joined with " | ". `observer("json", out)`
writes one JSON object per line: `time` (ISO 8601, UTC), `level`, `namespace`, `message`,
`system` when Twisted names one, `error` and `traceback` for a failure, then the event's own
fields that JSON can hold (Twisted's `log_*` keys are left out; a field named like one of
ours is shadowed by ours).

Privacy, applied to every event before it is written:

- Every run of 8 or more digits, with or without a leading `+`, becomes its first 3 and last
  2 digits with `*` between (`33612345678` → `336******78`), in the message, the traceback
  and the fields (integers of 8 digits or more become masked strings). Numbers are E.164
  digits once past the edge, so this catches them; a number written with spaces is not.
  Short codes (5 digits), ports and short message ids are left alone. Message ids are
  decimal too and reach 8 digits after a few tens of millions of messages: from then on they
  are masked as well. That is the safe side (a log line cannot tell an id from a number);
  look a message up by its other fields or at DEBUG.
- Fields named like a text (`text`, `short_message`, `body`, `payload`, `message_payload`,
  `content`, `*_text`, …) are withheld: the message shows `<withheld: N chars>` in their
  place and JSON gives `<name>_length` instead of the field. Texts reach a line only through
  such fields: a format that digs into an object (`{pdu.params[short_message]}`) is not
  caught, so don't write one.
- `reveal=True` lifts both, but only when the observer's level is debug, and then only for
  the events logged at DEBUG: an INFO line (or anything above) never shows a number or a
  text, whatever the config says.
"""

import json
import re
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
)

FORMATS = ("text", "json")
LEVELS = tuple(level.name for level in LogLevel.iterconstants())  # debug, info, … critical

_NUMBER = re.compile(r"\+?[0-9]{8,}")
_TEXT_FIELD = re.compile(r"(?:^|_)(?:text|short_message|body|payload|content)$", re.IGNORECASE)
# Keys of events bridged from twisted.python.log: ours say the same, or they are internal.
_LEGACY = frozenset(
    {"message", "format", "isError", "why", "failure", "time", "system", "logLevel"}
)
# Line breaks JSON leaves raw when it writes non-ASCII as is (str.splitlines breaks on them).
_RAW_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def observer(
    fmt: str,
    out: IO[Any],
    level: LogLevel | str = LogLevel.info,
    reveal: bool = False,
) -> ILogObserver:
    """An observer writing the events at `level` and above to `out`, one line each.

    `fmt` is "text" or "json"; `level` a LogLevel or its name; `reveal` shows numbers and
    texts in DEBUG lines, honoured only when `level` is debug.
    """
    if isinstance(level, str):
        level = LogLevel.levelWithName(level)
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    reveal = reveal and level == LogLevel.debug
    write = _text if fmt == "text" else _json
    lines = FileLogObserver(out, lambda event: write(event, reveal))
    return FilteringLogObserver(lines, [LogLevelFilterPredicate(defaultLogLevel=level)])


def mask(text: str) -> str:
    """`text` with every run of 8 or more digits (and a leading +) masked."""
    return _NUMBER.sub(_stars, text)


def _stars(match: re.Match) -> str:
    number = match.group()
    sign, digits = ("+", number[1:]) if number[0] == "+" else ("", number)
    return f"{sign}{digits[:3]}{'*' * (len(digits) - 5)}{digits[-2:]}"


class _Withheld:
    """Stands for a text in the event a message is formatted from."""

    def __init__(self, value: Any):
        try:
            self.length: int | None = len(value)
        except TypeError:
            self.length = None
        self.unit = "bytes" if isinstance(value, bytes | bytearray) else "chars"

    def __str__(self) -> str:
        return "<withheld>" if self.length is None else f"<withheld: {self.length} {self.unit}>"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)


def _clear(event: LogEvent, reveal: bool) -> bool:
    """Whether this event may show numbers and texts."""
    return reveal and event.get("log_level") == LogLevel.debug


def _parts(event: LogEvent, reveal: bool) -> tuple[bool, str, str | None, str | None]:
    """(clear, message, error, traceback) of an event, masked and withheld unless clear."""
    clear = _clear(event, reveal)
    shown = event
    if not clear:
        shown = {
            k: _Withheld(v) if _TEXT_FIELD.search(k) and not k.startswith("log_") else v
            for k, v in event.items()
        }
    message = formatEvent(shown)
    error = traceback = None
    failure = event.get("log_failure")
    if failure is not None:
        try:
            error = f"{failure.type.__name__}: {failure.getErrorMessage()}"
            traceback = failure.getTraceback()
        except Exception as e:  # a Failure that cannot describe itself still gets a line
            error = error or f"unformattable failure: {e!r}"
    if not clear:
        message, error, traceback = (mask(s) if s else s for s in (message, error, traceback))
    return clear, message, error, traceback


def _time(event: LogEvent) -> str | None:
    when = event.get("log_time")
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _level(event: LogEvent) -> str:
    level = event.get("log_level")
    return level.name if level is not None else "info"


def _text(event: LogEvent, reveal: bool) -> str | None:
    _, message, _, traceback = _parts(event, reveal)
    line = "\\n".join(message.splitlines())
    if traceback:
        folded = " | ".join(s.rstrip() for s in traceback.splitlines() if s.strip())
        line = f"{line} | {folded}" if line else folded
    if not line:
        return None  # nothing to say (as Twisted's own text observer)
    namespace = event.get("log_namespace", "-")
    return f"{_time(event) or '-'} {_level(event)} [{namespace}] {line}\n"


def _json(event: LogEvent, reveal: bool) -> str:
    clear, message, error, traceback = _parts(event, reveal)
    record: dict[str, Any] = {
        "time": _time(event),
        "level": _level(event),
        "namespace": event.get("log_namespace", "-"),
        "message": message,
    }
    if event.get("log_system", "-") != "-":
        record["system"] = str(event["log_system"])
    if error is not None:
        record["error"] = error
        record["traceback"] = traceback
    fields: dict[str, Any] = {}
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY:
            continue
        if not clear:
            _private(fields, key, value)
        elif _serialisable(value):
            fields[key] = value
    record.update((k, v) for k, v in fields.items() if k not in record)
    return json.dumps(record, ensure_ascii=False).translate(_RAW_BREAKS) + "\n"


def _private(record: dict, key: Any, value: Any) -> None:
    """Put `value` in `record` under `key`: a text as its length, numbers masked, and
    nothing when JSON cannot hold it."""
    if isinstance(key, str) and _TEXT_FIELD.search(key):
        length = _Withheld(value).length
        if length is not None:
            record[f"{key}_length"] = length
        return
    value = _masked(value)
    if _serialisable(value):
        record[mask(key) if isinstance(key, str) else key] = value


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000_000:
        return mask(str(value))
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        inner: dict = {}
        for k, v in value.items():
            _private(inner, k, v)
        return inner
    return value


def _serialisable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True
