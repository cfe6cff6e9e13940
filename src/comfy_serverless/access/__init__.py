"""Who may do what, how much and how fast: tiers, rate limits, quotas, idempotency, scopes."""
