"""What an SMS reply asks for: CTIA keywords, plain requests to stop (the FCC's "reasonable means"), review."""

import pytest

from carecast.intake.replies import meaning


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # CTIA keywords, the whole reply, any case
        ("STOP", "STOP"), ("stop.", "STOP"), ("StopAll", "STOP"), ("unsubscribe", "STOP"), ("Cancel", "STOP"),
        ("end", "STOP"), ("QUIT", "STOP"), ("revoke", "STOP"), ("optout", "STOP"), ("opt out", "STOP"),
        ("Opt  Out!", "STOP"), ("Opt-out", "STOP"), ("start", "START"), ("UNSTOP", "START"), ("yes", "START"),
        ("help", "HELP"), ("Info", "HELP"),
        # a keyword with what people add to it
        ("Please stop", "STOP"), ("Stop please", "STOP"), ("STOP TEXTING", "STOP"), ("STOP 🙏", "STOP"),
        ("Unsubscribe please", "STOP"), ("Quit texting", "STOP"), ("Arrêt svp", "STOP"),
        # plain requests to stop, English
        ("Please stop texting me", "STOP"), ("stop messaging me!!", "STOP"), ("Unsubscribe me please", "STOP"),
        ("remove me from your list", "STOP"), ("Take me off this list", "STOP"), ("opt me out", "STOP"),
        ("Do not text me again", "STOP"), ("don’t contact me", "STOP"), ("no more texts please", "STOP"),
        ("Stop sending me these messages", "STOP"), ("quit sending offers", "STOP"), ("leave me alone", "STOP"),
        # and French
        ("Arrêtez de m'écrire", "STOP"), ("arretez de m’envoyer des sms", "STOP"), ("Ne m'écrivez plus", "STOP"),
        ("désabonnez-moi", "STOP"), ("desinscrivez moi svp", "STOP"), ("Je ne veux plus recevoir vos messages", "STOP"),
        ("plus de SMS merci", "STOP"), ("Ne me contactez plus", "STOP"), ("Arrêtez de me contacter", "STOP"),
        ("ne plus me contacter svp", "STOP"),
        # it speaks of stopping without asking it plainly: a human looks
        ("Can you stop by the shop tomorrow?", "REVIEW"), ("Stop sending me pizza", "REVIEW"),
        ("Don't stop the deliveries", "REVIEW"), ("how do I unsubscribe from the newsletter only?", "REVIEW"),
        ("Arrêt de bus devant chez moi", "REVIEW"), ("Don't stop texting me!", "REVIEW"),
        ("Please don't stop messaging me, I love the updates", "REVIEW"),
        ("Stop emailing me, texts are fine", "REVIEW"),
        ("Do not text me after 9pm", "REVIEW"), ("Can you remove me from the 3pm booking?", "REVIEW"),
        ("Cancel it", "REVIEW"),
        # ordinary replies
        ("Thanks, got it", None), ("When will my order arrive?", None), ("Merci beaucoup !", None), ("", None),
        ("Yes please, Tuesday works", None), ("Yes please", None), ("Don't email me, text me instead", None),
        ("Take me off the waitlist please", None), ("Delete me from the group order", None),
        ("Pouvez-vous m'envoyer plus de messages ?", None), ("Je n'ai plus de messages de confirmation", None),
        ("J'ai reçu plus de messages que prévu", None),
    ],
)  # fmt: skip
def test_what_a_reply_asks_for(body, expected):
    assert meaning(body) == expected
