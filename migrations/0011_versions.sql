-- Blue/green read models: every installed version of a projection has a physical schema of
-- its own (`<projection>__<generation>`) holding its tables; the projection's own schema
-- (`<projection>`) holds one view per table of the active version, so readers keep using the
-- stable names while a new version is built beside the live one and swapped in atomically.
-- The physical schema's name is also the version's key in `checkpoints`.
CREATE TABLE IF NOT EXISTS refract_versions (
    schema_name     TEXT PRIMARY KEY,
    projection      TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    content_hash    TEXT NOT NULL,
    module_version  TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when a newer version replaced it and it was kept (settings: keep_replaced).
    retired_at      TIMESTAMPTZ,
    UNIQUE (projection, generation)
);

-- The version the stable names point at; NULL for a projection installed before versions
-- existed (its tables sit in the stable schema itself and are replaced by a rebuild).
ALTER TABLE refract_projections ADD COLUMN IF NOT EXISTS active_schema TEXT;

-- A notice about a projection that is not an error of the version serving it (e.g. a new
-- component that was refused while the old one keeps serving).
ALTER TABLE refract_status ADD COLUMN IF NOT EXISTS notice TEXT;
