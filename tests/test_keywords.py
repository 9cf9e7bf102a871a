"""Tests for the classification of subscriber replies: STOP, CONTACT, OTHER."""

import pytest

from smsc.inbound.keywords import Kind, classify

STOP_FORMS = [
    "STOP",
    "stop",
    "Stop",
    "Stop!",
    "stop.",
    " STOP ",
    "STOP\n",
    "STOP SMS",
    "stop svp",
    "Stop merci",
    "STOP 36180",
    "STOP36180",
    "STOPSMS",
    "STOP au 36180",
    "Stöp",
    "STOPPER",
    "Stoppez svp",
    "Merci de stopper",
    "je ne veux plus, stop",
    "je veux pas que ça stop",
    "Arrêtez de m'envoyer des messages STOP",
    "nonstop",
    "ARRET",
    "ARRÊT",
    "arrêt",
    "Arret",
    "Arrêtez",
    "ARRETEZ",
    "ARRETER SVP",
    "arrêtez svp",
    "Merci d'arrêter",
    "S T O P",
    "s.t.o.p",
    "s-t-o-p",
    "S. T. O. P.",
    "A R R E T",
    "STOP🙏",
    "🛑STOP🛑",
    "👉 stop 👈",
    "ＳＴＯＰ",
    "ｓｔｏｐ ｓｖｐ",
    "𝐒𝐓𝐎𝐏",
    "Ⓢⓣⓞⓟ",
    "ﬆop",
    "stop\u00a0svp",
    "\u202fSTOP\u202f",
    "S\u200bTOP",
    "ST\u00adOP",
    "UNSUBSCRIBE",
    "unsubscribe please",
    "désabonner",
    "DESABONNER",
    "Désabonnement",
    "désabonnez-moi",
    "Desinscription",
    "DÉSINSCRIRE",
    "désinscrivez moi svp",
    "Merci Christophe",
]


@pytest.mark.parametrize("text", STOP_FORMS)
def test_stop(text):
    assert classify(text) is Kind.STOP


@pytest.mark.parametrize(
    "text",
    [
        "CONTACT",
        "contact",
        "Contact",
        "contact ?",
        "Contact svp",
        "  contact.",
        "CONTACTS",
        "contacter",
        "Contacter svp",
        "Contact: qui êtes-vous ?",
        "ＣＯＮＴＡＣＴ",
        "C O N T A C T",
        "📞 contact",
    ],
)
def test_contact(text):
    assert classify(text) is Kind.CONTACT


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "🙏",
        "Bonjour",
        "OK merci",
        "Oui",
        "barrette",
        "Une BARRETTE de cuivre",
        "arrivé",
        "Je suis arrivée",
        "je vous contacte demain",
        "Merci pour le contact",
        "Contactez-moi",
        "STO P",
        "ST OP",
        "ST0P",
        "les top 10",
        "Ta commande est prête ?",
        "36180",
    ],
)
def test_other(text):
    assert classify(text) is Kind.OTHER


@pytest.mark.parametrize("text", ["CONTACT STOP", "contact, arrêtez", "Contact désabonner"])
def test_stop_wins_over_contact(text):
    assert classify(text) is Kind.STOP


def test_kind_values():
    assert [str(kind) for kind in Kind] == ["stop", "contact", "other"]
