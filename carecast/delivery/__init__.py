"""Deliveries: the ledger every message is written in (ledger), how each is decided and claimed
(claim), composed (compose), what a provider's answer means (answers), and what operators
see and do about them (attention, resend). The deliver activity (activities/deliver.py)
puts the first four together."""
