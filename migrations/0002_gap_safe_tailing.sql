-- Gap-safe tailing: every event carries the id of the transaction that wrote it, and the log
-- is read in (transaction_id, global_position) order below the visibility horizon. A
-- global_position alone is taken at INSERT time, not at commit, so a tailer that remembers
-- only positions skips events whose transactions commit late.
--
-- The column is added with a constant default first: that is a catalog-only change (no table
-- rewrite), and rows written before Refract get '0', so they order before everything new.
-- Only then does the default become the writing transaction's id, for every writer that
-- inserts just the ADR's columns.
ALTER TABLE events ADD COLUMN IF NOT EXISTS transaction_id xid8 NOT NULL DEFAULT '0';
ALTER TABLE events ALTER COLUMN transaction_id SET DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS idx_events_transaction ON events (transaction_id, global_position);

-- A checkpoint is the (transaction_id, position) pair a projection has applied up to.
ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS transaction_id xid8 NOT NULL DEFAULT '0';
