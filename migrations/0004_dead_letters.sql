-- Events a projection could not apply, parked so that the projection can move on; at most one
-- entry per projection and position.
CREATE TABLE IF NOT EXISTS dead_letters (
    id              BIGSERIAL PRIMARY KEY,
    projection_name VARCHAR(500) NOT NULL,
    position        BIGINT NOT NULL,
    transaction_id  xid8 NOT NULL DEFAULT '0',
    event_id        UUID NOT NULL,
    stream_id       VARCHAR(500) NOT NULL,
    event_type      VARCHAR(500) NOT NULL,
    error           TEXT NOT NULL,
    failed_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    UNIQUE (projection_name, position)
);
