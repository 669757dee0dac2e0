-- Confinement: each projection version writes through a PostgreSQL role of its own, created
-- by the engine, that owns the version's schema and has no other rights. Its writing
-- connection logs in as that role, so neither `SET ROLE` nor `RESET ROLE` leads back to the
-- engine's rights.
CREATE TABLE IF NOT EXISTS refract_roles (
    checkpoint_key  TEXT PRIMARY KEY,
    role_name       TEXT NOT NULL UNIQUE,
    password        TEXT NOT NULL
);
REVOKE ALL ON refract_roles FROM PUBLIC;

-- Moves the checkpoint under `key` from one cursor to the next (compare-and-set) for the
-- version's own role, or for the engine itself (the owner of this function). A projection's
-- role can move no other checkpoint and cannot touch the table otherwise.
CREATE OR REPLACE FUNCTION refract_advance(key TEXT, from_xid BIGINT, from_pos BIGINT, to_xid BIGINT, to_pos BIGINT)
RETURNS BOOLEAN
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT
AS $$
    WITH moved AS (
        UPDATE checkpoints
           SET transaction_id = to_xid::text::xid8, position = to_pos, updated_at = now()
         WHERE projection_name = key
           AND transaction_id = from_xid::text::xid8 AND position = from_pos
           AND (session_user = current_user
                OR EXISTS (SELECT 1 FROM refract_roles r WHERE r.checkpoint_key = key AND r.role_name = session_user))
        RETURNING 1
    )
    SELECT count(*) = 1 FROM moved
$$;
REVOKE ALL ON FUNCTION refract_advance(TEXT, BIGINT, BIGINT, BIGINT, BIGINT) FROM PUBLIC;

-- Parks events a projection skipped (error policy `skip`) in `dead_letters`, for the version's
-- own role (which cannot read `events`) or the engine: one entry per position given, with
-- its error; a position already parked for the projection is updated.
CREATE OR REPLACE FUNCTION refract_dead_letter(key TEXT, projection TEXT, positions TEXT[], errors TEXT[])
RETURNS VOID
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT
AS $$
    INSERT INTO dead_letters AS d
           (projection_name, position, transaction_id, event_id, stream_id, event_type, error)
    SELECT projection, e.global_position, e.transaction_id, e.event_id, e.stream_id, e.event_type, u.error
      FROM unnest(positions, errors) AS u (position, error)
      JOIN events e ON e.global_position = u.position::bigint
     WHERE session_user = current_user
        OR EXISTS (SELECT 1 FROM refract_roles r LEFT JOIN refract_versions v ON v.schema_name = r.checkpoint_key
                    WHERE r.checkpoint_key = key AND r.role_name = session_user
                      AND coalesce(v.projection, projection) = projection)
    ON CONFLICT (projection_name, position) DO UPDATE
       SET transaction_id = EXCLUDED.transaction_id, event_id = EXCLUDED.event_id, stream_id = EXCLUDED.stream_id,
           event_type = EXCLUDED.event_type, error = EXCLUDED.error, failed_at = now()
$$;
REVOKE ALL ON FUNCTION refract_dead_letter(TEXT, TEXT, TEXT[], TEXT[]) FROM PUBLIC;
