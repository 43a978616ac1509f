"""Patterns that names and times in spec files must match, with words for a marketer."""

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
