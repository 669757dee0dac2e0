-- The event store of ADR-002, column for column: streams, events, snapshots, checkpoints.
-- Every statement is IF NOT EXISTS, so a database that already holds go-mink's tables
-- (the same DDL) keeps them and their rows.

CREATE TABLE IF NOT EXISTS streams (
    id          BIGSERIAL PRIMARY KEY,
    stream_id   VARCHAR(500) NOT NULL UNIQUE,
    category    VARCHAR(250) NOT NULL,
    version     BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_streams_category ON streams (category);

CREATE TABLE IF NOT EXISTS events (
    global_position BIGSERIAL PRIMARY KEY,
    stream_id       VARCHAR(500) NOT NULL,
    version         BIGINT NOT NULL,
    event_id        UUID NOT NULL DEFAULT gen_random_uuid(),
    event_type      VARCHAR(500) NOT NULL,
    data            JSONB NOT NULL,
    metadata        JSONB,
    timestamp       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    UNIQUE (stream_id, version)
);
-- ADR-002 also lists idx_events_stream ON events (stream_id, version): the index of the UNIQUE
-- constraint above is exactly that index, so a second copy would only slow every insert down.
CREATE INDEX IF NOT EXISTS idx_events_type ON events (event_type);
CREATE INDEX IF NOT EXISTS idx_events_timestamp ON events (timestamp);

CREATE TABLE IF NOT EXISTS snapshots (
    stream_id   VARCHAR(500) PRIMARY KEY,
    version     BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS checkpoints (
    projection_name VARCHAR(500) PRIMARY KEY,
    position        BIGINT NOT NULL DEFAULT 0,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
