"""What campaigns did: counts from the ledger's rows, lift over a holdout with its interval, KPI verdicts."""
