"""What an SMS reply asks for: STOP, START, HELP, nothing, or a human's look.

CTIA's keywords are honoured as the whole reply, in any case (STOP, STOPALL, UNSUBSCRIBE,
CANCEL, END, QUIT, REVOKE, OPTOUT — and "opt out" as two words). The FCC's 2025 rule asks
that an opt-out "by any reasonable means" be honoured too, so a plain request to stop, in
English or French ("please stop texting me", "unsubscribe me", "arrêtez de m'écrire"),
withdraws SMS consent as STOP does. A reply that speaks of stopping or unsubscribing
without asking it plainly ("can you stop by the shop?") is flagged for review, never
acted on. Everything else is an ordinary reply.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Meaning = Literal["STOP", "START", "HELP", "REVIEW"]

STOP_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
START_KEYWORDS = {"START", "UNSTOP", "YES"}
HELP_KEYWORDS = {"HELP", "INFO"}

_ME = r"(?:me|us)"
_MESSAGES = r"(?:texts?|messages?|sms|emails?|offers?|promotions?|marketing)"
# Plain requests to stop, matched anywhere in the reply (lower case, accents kept, apostrophes straightened).
PLAIN_REQUESTS = tuple(
    re.compile(pattern)
    for pattern in (
        rf"\b(?:stop|quit|cease)\s+(?:texting|messaging|contacting|writing\s+to|emailing|spamming)\s+{_ME}\b",
        rf"\b(?:stop|quit)\s+sending\s+(?:{_ME}\s+)?(?:any\s+more\s+|these\s+|your\s+)?{_MESSAGES}",
        rf"\b(?:unsubscribe|remove|delete)\s+{_ME}\b",
        rf"\btake\s+{_ME}\s+off\b",
        rf"\bopt\s+{_ME}\s+out\b",
        rf"\b(?:do\s+not|don't|dont)\s+(?:text|message|contact|sms|email)\s+{_ME}\b",
        rf"\bno\s+more\s+{_MESSAGES}\b",
        r"\bleave\s+me\s+alone\b",
        r"\barr[eê]te[rz]?\s+de\s+m'(?:[eé]crire|envoyer|contacter|spammer)\b",
        r"\bne\s+m'(?:[eé]crivez|envoyez|contactez)\s+plus\b",
        r"\bd[eé]sabonne[rz]?[\s-]+moi\b",
        r"\bd[eé]sinscri(?:vez|re|s)[\s-]+moi\b",
        r"\bje\s+ne\s+veux\s+plus\s+(?:recevoir|de\s+(?:messages?|sms|textos?))\b",
        r"\bplus\s+de\s+(?:messages?|sms|textos?)\b",
    )
)
# Words that may mean a wish to stop; a reply with one of them that no pattern above matched goes to review.
MAYBE = re.compile(r"\b(?:stop\w*|unsubscrib\w*|opt\w*\s*out|remove|arr[eê]t\w*|d[eé]sabonn\w*|d[eé]sinscri\w*)\b")


def _normal(body: str) -> str:
    text = unicodedata.normalize("NFC", body).replace("’", "'").replace("`", "'")
    return " ".join(text.split())


def meaning(body: str) -> Meaning | None:
    """What the reply asks for; None for an ordinary reply."""
    text = _normal(body)
    word = text.strip(".!? ").upper()
    for name, words in (("STOP", STOP_KEYWORDS), ("START", START_KEYWORDS), ("HELP", HELP_KEYWORDS)):
        if word in words:
            return name  # type: ignore[return-value]
    lower = text.lower()
    if any(pattern.search(lower) for pattern in PLAIN_REQUESTS):
        return "STOP"
    if MAYBE.search(lower):
        return "REVIEW"
    return None
