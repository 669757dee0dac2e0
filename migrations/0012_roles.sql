-- Confinement: each projection version writes through a PostgreSQL role of its own, created
-- by the engine, that owns the version's schema and has no other rights. Its connections log
-- in as that role, so neither `SET ROLE` nor `RESET ROLE` leads back to the engine's rights.
CREATE TABLE IF NOT EXISTS refract_roles (
    checkpoint_key  TEXT PRIMARY KEY,
    role_name       TEXT NOT NULL UNIQUE,
    password        TEXT NOT NULL
);
REVOKE ALL ON refract_roles FROM PUBLIC;

-- Moves the checkpoint under `p_key` from one cursor to the next (compare-and-set) for the
-- version's own role, or for the engine itself (the owner of this function). A projection's
-- role can move no other checkpoint and cannot touch the table otherwise.
CREATE OR REPLACE FUNCTION refract_advance(p_key TEXT, from_xid BIGINT, from_pos BIGINT, to_xid BIGINT, to_pos BIGINT)
RETURNS BOOLEAN
LANGUAGE sql SECURITY DEFINER
AS $$
    WITH moved AS (
        UPDATE checkpoints c
           SET transaction_id = to_xid::text::xid8, position = to_pos, updated_at = now()
         WHERE c.projection_name = p_key
           AND c.transaction_id = from_xid::text::xid8 AND c.position = from_pos
           AND (session_user = current_user
                OR EXISTS (SELECT 1 FROM refract_roles r WHERE r.checkpoint_key = p_key AND r.role_name = session_user))
        RETURNING 1
    )
    SELECT count(*) = 1 FROM moved
$$;
REVOKE ALL ON FUNCTION refract_advance(TEXT, BIGINT, BIGINT, BIGINT, BIGINT) FROM PUBLIC;

-- Parks events a projection skipped (error policy `skip`) in `dead_letters`, for the version's
-- own role (which cannot read `events`) or the engine: one entry per position given, with
-- its error, under the version's own projection; a position already parked is updated.
CREATE OR REPLACE FUNCTION refract_dead_letter(p_key TEXT, p_projection TEXT, p_positions TEXT[], p_errors TEXT[])
RETURNS VOID
LANGUAGE sql SECURITY DEFINER
AS $$
    INSERT INTO dead_letters AS d
           (projection_name, position, transaction_id, event_id, stream_id, event_type, error)
    SELECT p_projection, e.global_position, e.transaction_id, e.event_id, e.stream_id, e.event_type, u.error
      FROM unnest(p_positions, p_errors) AS u (position, error)
      JOIN events e ON e.global_position = u.position::bigint
     WHERE session_user = current_user
        OR EXISTS (SELECT 1 FROM refract_roles r JOIN refract_versions v ON v.schema_name = r.checkpoint_key
                    WHERE r.checkpoint_key = p_key AND r.role_name = session_user AND v.projection = p_projection)
    ON CONFLICT (projection_name, position) DO UPDATE
       SET transaction_id = EXCLUDED.transaction_id, event_id = EXCLUDED.event_id, stream_id = EXCLUDED.stream_id,
           event_type = EXCLUDED.event_type, error = EXCLUDED.error, failed_at = now()
$$;
REVOKE ALL ON FUNCTION refract_dead_letter(TEXT, TEXT, TEXT[], TEXT[]) FROM PUBLIC;

-- Security-definer functions resolve names in the store's schema and never in `pg_temp`,
-- where a role could plant a look-alike `refract_roles` (it is searched first unless named).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION refract_advance(TEXT, BIGINT, BIGINT, BIGINT, BIGINT) SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION refract_dead_letter(TEXT, TEXT, TEXT[], TEXT[]) SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

-- A projection's role may create tables and indexes in its schema, nothing else: a view,
-- function, rule, policy or trigger of its own would run with the rights of whoever reads its
-- tables (the engine's get-row, a person querying the read model). Event triggers need a
-- superuser; an engine without one creates no roles' guard (see README "Security model").
CREATE OR REPLACE FUNCTION refract_guard_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- `current_user`: inside the engine's security-definer DDL runner it is the role.
    IF current_user::text ~ '^refract_[0-9a-f]{20}$'
       AND tg_tag NOT IN ('CREATE TABLE', 'CREATE INDEX', 'ALTER TABLE', 'ALTER INDEX', 'DROP TABLE', 'DROP INDEX',
                          'CREATE SEQUENCE', 'ALTER SEQUENCE', 'DROP SEQUENCE', 'COMMENT') THEN
        RAISE EXCEPTION 'permission denied: a projection may create only tables and indexes in its schema, not run %',
            tg_tag USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'refract_guard_ddl_' || current_schema()) THEN
        EXECUTE format('CREATE EVENT TRIGGER %I ON ddl_command_start EXECUTE FUNCTION %I.refract_guard_ddl()',
                       'refract_guard_ddl_' || current_schema(), current_schema());
    END IF;
END
$$;
