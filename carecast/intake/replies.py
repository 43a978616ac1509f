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

STOP_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT", "ARRET",
                 "ARRÊT"}  # fmt: skip
START_KEYWORDS = {"START", "UNSTOP", "YES"}
HELP_KEYWORDS = {"HELP", "INFO"}

_ME = r"(?:me|us)"
_SMS = r"(?:texts?|messages?|sms|offers?|promotions?|marketing)"
_LIST = r"(?:your|this|the|that|these|all)\s+(?:list|lists|texts?|messages?|sms|mailing\s+list)"
# Plain requests to stop, matched anywhere in the reply (lower case, accents kept, apostrophes straightened).
PLAIN_REQUESTS = tuple(
    re.compile(pattern)
    for pattern in (
        rf"\b(?:stop|quit|cease)\s+(?:texting|messaging|contacting|spamming)(?:\s+{_ME})?\b",
        rf"\b(?:stop|quit)\s+sending\s+(?:{_ME}\s+)?(?:any\s+more\s+|these\s+|your\s+|all\s+)?{_SMS}",
        rf"\bunsubscribe\s+{_ME}\b",
        rf"\b(?:remove|delete)\s+{_ME}(?:\s+from\s+{_LIST})?\s*$",
        rf"\b(?:remove|delete)\s+{_ME}\s+from\s+{_LIST}\b",
        rf"\btake\s+{_ME}\s+off\s+{_LIST}\b",
        rf"\bopt\s+{_ME}\s+out\b",
        rf"\b(?:do\s+not|don't|dont)\s+(?:text|message|contact|sms)\s+{_ME}\b",
        rf"^no\s+more\s+{_SMS}(?:\s+please)?$",
        r"\bleave\s+me\s+alone\b",
        r"\barr[eê]te[rz]?\s+de\s+(?:m'|me\s+)(?:[eé]crire|envoyer|contacter|spammer|texter)\b",
        r"\bne\s+(?:m'|me\s+)(?:[eé]crivez|envoyez|contactez)\s+plus\b",
        r"\bne\s+plus\s+(?:m'|me\s+)(?:[eé]crire|envoyer|contacter)\b",
        r"\bd[eé]sabonne[rz]?[\s-]+moi\b",
        r"\bd[eé]sinscri(?:vez|re|s)[\s-]+moi\b",
        r"\bje\s+ne\s+veux\s+plus\s+(?:recevoir|de\s+(?:messages?|sms|textos?))\b",
        r"^plus\s+de\s+(?:messages?|sms|textos?)(?:\s+(?:svp|merci|s'il\s+vous\s+pla[iî]t))?$",
    )
)
# A request that is about something else than receiving these texts: never acted on, a human looks.
NOT_A_STOP = re.compile(
    r"\b(?:don't|do\s+not|dont|never|please\s+don't)\s+stop\b"  # "don't stop texting me!"
    r"|\b(?:instead|after|before|until|between|during|tonight|tomorrow|weekends?|at\s+night|\d+\s*(?:am|pm|h))\b"
)
# Words that may mean a wish to stop; a reply with one of them that no pattern above matched goes to review.
MAYBE = re.compile(
    r"\b(?:stop\w*|unsubscrib\w*|opt\w*[\s-]*out|remove|quit|cancel|revoke|arr[eê]t\w*|d[eé]sabonn\w*|"
    r"d[eé]sinscri\w*)\b"
)
# What may come with a keyword and leaves it a keyword: "Stop please", "STOP TEXTING", "stop 🙏".
FILLER = {"please", "pls", "plz", "now", "thanks", "thank", "you", "texting", "messaging", "messages", "texts",
          "all", "svp", "merci", "stp", "maintenant"}  # fmt: skip


def _normal(body: str) -> str:
    text = unicodedata.normalize("NFC", body).replace("’", "'").replace("`", "'")
    return " ".join(text.split())


def meaning(body: str) -> Meaning | None:
    """What the reply asks for; None for an ordinary reply."""
    text = _normal(body)
    lower = text.lower()
    words = re.findall(r"[\w']+", lower.replace("-", " "))
    whole = " ".join(words).upper()
    if whole in START_KEYWORDS:  # only the word itself gives consent back ("yes please" may answer anything)
        return "START"
    keyword = " ".join(w for w in words if w not in FILLER).upper() if len(words) <= 4 else whole
    for name, keywords in (("STOP", STOP_KEYWORDS), ("HELP", HELP_KEYWORDS)):
        if whole in keywords or keyword in keywords:
            return name  # type: ignore[return-value]
    if not NOT_A_STOP.search(lower) and any(pattern.search(lower) for pattern in PLAIN_REQUESTS):
        return "STOP"
    if MAYBE.search(lower) or NOT_A_STOP.search(lower) and any(p.search(lower) for p in PLAIN_REQUESTS):
        return "REVIEW"
    return None
