-- What a receiver answered (its first bytes only), and the index behind the dispatcher's
-- per-destination cap on deliveries in flight.
ALTER TABLE webhook_deliveries ADD COLUMN response_body TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN response_truncated INTEGER;
CREATE INDEX webhook_events_in_flight ON webhook_events (url) WHERE status = 'delivering';
