"""Provider error text without the addresses in it, for what leaves the store.

Twilio's errors name the To number ("The 'To' number +14155550101 is not a valid phone
number") and SendGrid's may echo an address. The store keeps the whole text with the
delivery it belongs to; Temporal's failure records and the worker's logs get it scrubbed,
since they keep it beside workflow histories that must carry no PII.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
PHONE = re.compile(r"\+\d[\d ().-]{5,18}\d")  # E.164 and its spaced or punctuated forms


def scrub(text: str, *addresses: str | None) -> str:
    """`text` with the given addresses, and anything shaped like an email address or phone number, masked."""
    for address in addresses:
        if address:
            text = text.replace(address, "[address]")
            if address.startswith("+"):  # a number is sometimes echoed without its plus
                text = text.replace(address[1:], "[address]")
    return PHONE.sub("[phone]", EMAIL.sub("[email]", text))
