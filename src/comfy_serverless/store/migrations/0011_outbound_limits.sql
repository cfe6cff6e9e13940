-- What a receiver answered: its first bytes only, and whether it went on past them.
ALTER TABLE webhook_deliveries ADD COLUMN response_body TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN response_truncated INTEGER;
