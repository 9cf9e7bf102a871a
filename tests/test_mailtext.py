"""What a mail says to the email-to-SMS gateway: its text (parts, charsets, encodings, HTML,
replies and signatures cut) and its subject's options (send time, sender)."""

from datetime import UTC, datetime

import pytest

from smsc.channels import mailtext
from smsc.channels.mailtext import MailError


def text_of(raw: str | bytes) -> str:
    return mailtext.sms_text(mailtext.parse(raw.encode() if isinstance(raw, str) else raw))


PLAIN = """\
From: ann@acme.example
To: 33600000001@sms.example.com
Subject: hello
Content-Type: text/plain; charset=utf-8

Your parcel is ready.
Pick it up before 18:00.   \n\n
"""


def test_plain_text_trimmed():
    assert text_of(PLAIN) == "Your parcel is ready.\nPick it up before 18:00."


def test_multipart_alternative_takes_the_plain_part():
    raw = """\
From: ann@acme.example
Subject: x
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b"

--b
Content-Type: text/plain; charset=utf-8

The plain one
--b
Content-Type: text/html; charset=utf-8

<p>The <b>HTML</b> one</p>
--b--
"""
    assert text_of(raw) == "The plain one"


def test_multipart_mixed_with_attachment_takes_the_text():
    raw = """\
From: ann@acme.example
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="m"

--m
Content-Type: text/plain; charset=utf-8

See attached
--m
Content-Type: application/pdf
Content-Disposition: attachment; filename="a.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--m--
"""
    assert text_of(raw) == "See attached"


def test_quoted_printable_utf8():
    raw = """\
From: ann@acme.example
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Rendez-vous confirm=C3=A9 =C3=A0 10h =E2=82=AC
"""
    assert text_of(raw) == "Rendez-vous confirmé à 10h €"


def test_latin1_charset_8bit():
    raw = (
        b"From: ann@acme.example\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        b"Caf\xe9 ferm\xe9 demain\r\n"
    )
    assert text_of(raw) == "Café fermé demain"


def test_html_only_gives_its_text():
    raw = """\
From: ann@acme.example
Content-Type: text/html; charset=utf-8

<html><head><style>p {color: red}</style><title>t</title></head>
<body><p>Hello&nbsp;<b>Ann</b>,</p><p>See you at 10 &amp; bring it.<br>Bob</p></body></html>
"""
    assert text_of(raw) == "Hello Ann,\n\nSee you at 10 & bring it.\nBob"  # nbsp: a space


def test_signature_is_cut():
    body = "Meeting moved to 3pm\n\n-- \nAnn Smith\nACME, +33 1 00 00 00 00\n"
    assert mailtext.strip_reply(body) == "Meeting moved to 3pm"


def test_a_double_dash_inside_a_line_is_kept():
    assert mailtext.strip_reply("pages 1--3 -- read them") == "pages 1--3 -- read them"


def test_english_reply_quote_and_attribution_cut():
    body = (
        "Yes, confirmed.\r\n"
        "\r\n"
        "On Mon, 1 Jun 2026 at 10:00, Bob <bob@example.com> wrote:\r\n"
        "> Can you confirm?\r\n"
        ">> earlier\r\n"
    )
    assert mailtext.strip_reply(body) == "Yes, confirmed."


def test_french_reply_wrapped_attribution_cut():
    body = (
        "Oui, c'est noté.\n"
        "Le lun. 1 juin 2026 à 10:00, Bob Martin <bob.martin@example.com>\n"
        "a écrit :\n"
        "> Pouvez-vous confirmer ?\n"
        "\n"
        "-- \n"
        "Ann\n"
    )
    assert mailtext.strip_reply(body) == "Oui, c'est noté."


def test_text_between_quotes_is_kept_and_a_plain_wrote_line_too():
    body = "He wrote: fine\n> quoted\nmy answer\n> more quoted\nend"
    # "He wrote: fine" does not end with "wrote:", so it is text
    assert mailtext.strip_reply(body) == "He wrote: fine\nmy answer\nend"


def test_forwarded_original_cut():
    body = "Please send.\n\n-----Original Message-----\nFrom: x\nold text"
    assert mailtext.strip_reply(body) == "Please send."


def test_empty_once_cut_is_refused():
    raw = "From: a@b.example\nContent-Type: text/plain\n\n> only a quote\n-- \nsig\n"
    with pytest.raises(MailError, match="empty"):
        text_of(raw)


def test_no_text_part_is_refused():
    raw = "From: a@b.example\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\nAA==\n"
    with pytest.raises(MailError, match="no text"):
        text_of(raw)


# -- the subject -----------------------------------------------------------------------------


def epoch(*args, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    "subject, expected",
    [
        ("at 2026-12-24 18:00", epoch(2026, 12, 24, 17, 0)),  # Paris in winter: UTC+1
        ("Promo at 2026-07-14T09:30:15 sharp", epoch(2026, 7, 14, 7, 30, 15)),  # summer: +2
        ("à 2026-12-24 18:00+00:00", epoch(2026, 12, 24, 18, 0)),
        ("AT 2026-12-24T18:00Z", epoch(2026, 12, 24, 18, 0)),
        ("at 2026-12-24 18:00-0500", epoch(2026, 12, 24, 23, 0)),
        ("Hello", None),
        ("", None),
        ("meeting 2026-12-24 18:00", None),  # no "at": not a send time
        ("that 2026-12-24 18:00", None),
    ],
)
def test_send_time(subject, expected):
    assert mailtext.send_time(subject, "Europe/Paris") == expected


def test_send_time_in_another_zone():
    assert mailtext.send_time("at 2026-01-01 09:00", "America/New_York") == epoch(2026, 1, 1, 14, 0)


def test_send_time_that_is_not_a_date():
    with pytest.raises(MailError, match="2026-13-40 18:00"):
        mailtext.send_time("at 2026-13-40 18:00", "Europe/Paris")


@pytest.mark.parametrize(
    "subject, expected",
    [
        ("from shop", "SHOP"),
        ("Sale! from SHOP at 2026-12-24 18:00", "SHOP"),
        ("from 36180", "36180"),
        ("from +33937000001", "33937000001"),
        ("news from Paris", None),  # not a registered sender: prose
        ("shop", None),
    ],
)
def test_named_sender(subject, expected):
    registered = frozenset({"SHOP", "36180", "33937000001"})
    assert mailtext.named_sender(subject, registered) == expected
