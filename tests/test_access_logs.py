"""The API's access log names no preference-center token and no contact id (security review finding 7)."""

import logging
import logging.config

from carecast.api.logs import log_config


def test_tokens_and_contact_ids_are_redacted_from_the_access_log(capsys):
    logging.config.dictConfig(log_config())
    access = logging.getLogger("uvicorn.access")
    for path in ("/u/eyJjIjoiYy0xIn0.c2lnbmF0dXJl?x=1", "/v1/contacts/cust-4711", "/healthz", "/%75/eyJjIjoiYy0xIn0.x"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    logged = capsys.readouterr().out
    assert "/u/[token]?x=1" in logged and "/v1/contacts/[id]" in logged and "/healthz" in logged
    assert "eyJjIjoiYy0xIn0" not in logged and "cust-4711" not in logged
