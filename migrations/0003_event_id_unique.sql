-- An event_id names one event: a producer that retries an append with the same ids must not
-- create duplicates. The index also serves the idempotency lookup of an append.
CREATE UNIQUE INDEX IF NOT EXISTS idx_events_event_id ON events (event_id);
