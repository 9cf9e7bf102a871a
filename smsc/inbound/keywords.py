"""What a subscriber's reply (MO) asks for: an opt-out (STOP), the publisher's identity
(CONTACT), or nothing we act on (OTHER). Pure, stdlib only; `text` is already decoded.

French commercial SMS must offer a free opt-out, and the SMS+ charter treats any reply
containing STOP as one. No official list of variants exists, so the rule here is "when in
doubt, opt out": a false opt-out costs a customer one subscriber, a missed one is an offence
(commercial SMS without consent, L34-5 CPCE). STOP therefore wins over CONTACT.

The text is folded first: NFKD (accents, full-width letters, ligatures, mathematical and
circled letters, non-breaking spaces), case folded, combining marks and invisible format
characters (zero-width spaces and joiners, soft hyphens) dropped. A word is then a run of
letters or digits; emoji and punctuation only separate words. Runs of single-letter words are
joined into one word ("S T O P", "s.t.o.p", "s-t-o-p" -> "stop").

STOP, if any word:
- contains STOP: "STOP", "Stop!", "STOP36180", "STOPSMS", "Stöp", "STOPPER", "STOPPEZ",
  "Merci de stopper" (a verb asking us to stop), "nonstop" (the charter says "containing"),
  "je veux pas que ça stop" (STOP anywhere in a sentence counts). Accepted cost: a few words
  and names contain it ("Merci Christophe" opts out).
- starts with ARRET: "ARRET", "ARRÊT", "arrêtez", "ARRETER", "arrêté". Only at the start of a
  word, because "barrette" (a French word) contains ARRET.
- starts with UNSUBSCRIB (English, "unsubscribe", "unsubscribed"), DESABONN ("désabonner",
  "désabonnement", "désabonnez-moi") or DESINSCRI ("désinscrire", "désinscription",
  "désinscrivez"): they ask for the same thing in other words.
Not STOP: "STO P" or "ST OP" (fragments of several letters are not joined: that would read
"les top" as "lestop"); "ST0P" with a zero; look-alike letters of other scripts (Cyrillic
"СТОР"), which NFKD does not map; the US words END / CANCEL / QUIT, which are no French
practice and too common in sentences.

CONTACT, if not STOP and the first word is CONTACT, CONTACTS or CONTACTER, whatever follows:
"CONTACT", "contact ?", "Contact svp", "Contact: qui êtes-vous" (not "Contactez-moi", a request
for a call that a person should read). Only the first word, since the keyword is a command:
"je vous contacte demain" merely mentions it and is OTHER (the CONTACT answer is harmless,
but answering conversation with it would be noise).

OTHER: everything else, empty text included.
"""

import enum
import re
import unicodedata


class Kind(enum.StrEnum):
    STOP = "stop"
    CONTACT = "contact"
    OTHER = "other"


_WORD = re.compile(r"[^\W_]+")
# Searched in the words joined by single spaces.
_STOP = re.compile(r"stop|\b(?:arret|unsubscrib|desabonn|desinscri)")
_CONTACT = {"contact", "contacts", "contacter"}
# Combining marks (accents once decomposed) and format characters (zero-width ones, soft
# hyphen): dropped, so that they neither split a word nor stand in one.
_DROPPED = {"Mn", "Me", "Cf"}


def _fold(text: str) -> str:
    # Case folding both ways round: "𝐒" only folds once NFKD made it "S", and "İ" folds into
    # "i" plus a combining dot, dropped with the other marks.
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in text if unicodedata.category(c) not in _DROPPED)


def _words(text: str) -> list[str]:
    """The folded words of `text`, runs of single-letter words joined into one."""
    words: list[str] = []
    run = ""
    for word in _WORD.findall(_fold(text)):
        if len(word) == 1:
            run += word
            continue
        if run:
            words.append(run)
            run = ""
        words.append(word)
    if run:
        words.append(run)
    return words


def classify(text: str) -> Kind:
    """What the reply `text` asks for; see the module docstring for the rules."""
    words = _words(text)
    if _STOP.search(" ".join(words)):
        return Kind.STOP
    if words and words[0] in _CONTACT:
        return Kind.CONTACT
    return Kind.OTHER
