"""What an SMS reply asks for: CTIA keywords, plain requests to stop (the FCC's "reasonable means"), review."""

import pytest

from carecast.intake.replies import meaning


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # CTIA keywords, the whole reply, any case
        ("STOP", "STOP"), ("stop.", "STOP"), ("StopAll", "STOP"), ("unsubscribe", "STOP"), ("Cancel", "STOP"),
        ("end", "STOP"), ("QUIT", "STOP"), ("revoke", "STOP"), ("optout", "STOP"), ("opt out", "STOP"),
        ("Opt  Out!", "STOP"), ("start", "START"), ("UNSTOP", "START"), ("yes", "START"), ("help", "HELP"),
        ("Info", "HELP"),
        # plain requests to stop, English
        ("Please stop texting me", "STOP"), ("stop messaging me!!", "STOP"), ("Unsubscribe me please", "STOP"),
        ("remove me from your list", "STOP"), ("Take me off this list", "STOP"), ("opt me out", "STOP"),
        ("Do not text me again", "STOP"), ("don’t contact me", "STOP"), ("no more texts please", "STOP"),
        ("Stop sending me these messages", "STOP"), ("quit sending offers", "STOP"), ("leave me alone", "STOP"),
        # and French
        ("Arrêtez de m'écrire", "STOP"), ("arretez de m’envoyer des sms", "STOP"), ("Ne m'écrivez plus", "STOP"),
        ("désabonnez-moi", "STOP"), ("desinscrivez moi svp", "STOP"), ("Je ne veux plus recevoir vos messages", "STOP"),
        ("plus de SMS merci", "STOP"),
        # it speaks of stopping without asking it plainly: a human looks
        ("Can you stop by the shop tomorrow?", "REVIEW"), ("Stop sending me pizza", "REVIEW"),
        ("Don't stop the deliveries", "REVIEW"), ("how do I unsubscribe from the newsletter only?", "REVIEW"),
        ("Arrêt de bus devant chez moi", "REVIEW"),
        # ordinary replies
        ("Thanks, got it", None), ("When will my order arrive?", None), ("Merci beaucoup !", None), ("", None),
        ("Yes please, Tuesday works", None),
    ],
)  # fmt: skip
def test_what_a_reply_asks_for(body, expected):
    assert meaning(body) == expected
