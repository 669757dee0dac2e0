-- The engine's own bookkeeping: which component each projection runs, and what it is doing.

-- One row per installed projection: the component whose read model its schema holds.
CREATE TABLE IF NOT EXISTS refract_projections (
    name            TEXT PRIMARY KEY,
    content_hash    TEXT NOT NULL,
    module_version  TEXT NOT NULL,
    description     JSONB NOT NULL,
    installed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Published about once a second by the engine that owns each projection; read by
-- `refract status`. Lag is computed when read, from `checkpoints` and `events`.
CREATE TABLE IF NOT EXISTS refract_status (
    name                 TEXT PRIMARY KEY,
    content_hash         TEXT NOT NULL,
    module_version       TEXT NOT NULL,
    state                TEXT NOT NULL,
    events_per_second    DOUBLE PRECISION NOT NULL DEFAULT 0,
    events_applied       BIGINT NOT NULL DEFAULT 0,
    batches              BIGINT NOT NULL DEFAULT 0,
    last_error           TEXT,
    last_error_position  BIGINT,
    last_error_event_id  TEXT,
    engine               TEXT NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
