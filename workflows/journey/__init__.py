"""The journey workflow: one contact's way through one entry into a campaign."""
