"""Patterns that names and times in campaign and house files must match, with words for a marketer."""

from email.utils import formataddr, parseaddr
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator

IDENTIFIER = r"^[a-z][a-z0-9_-]{0,63}$"
CLOCK = r"^([01]\d|2[0-3]):[0-5]\d$"
RULE_NAME = r"^[a-z][a-z0-9_]*$"

HINTS = {
    IDENTIFIER: "lowercase letters, digits, '_' or '-', starting with a letter (e.g. welcome_series)",
    CLOCK: "a time of day as HH:MM, e.g. 08:00",
    RULE_NAME: "lowercase letters, digits and '_', starting with a letter",
}


def describe(pattern: str) -> str:
    return HINTS.get(pattern, f"text matching {pattern}")


def _mailbox(value: str) -> str:
    """'Name <address>' or a bare address, with an address email-validator accepts."""
    name, address = parseaddr(value)
    if not address or "@" not in address:
        raise ValueError(f"{value!r} is not an email address; write 'Acme Care <care@acme.example>'")
    try:
        normalised = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r}: {exc}") from None
    return formataddr((name, normalised)) if name else normalised


Mailbox = Annotated[str, AfterValidator(_mailbox)]
