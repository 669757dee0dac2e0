-- Moves a checkpoint as `refract_advance` does, but raises SQLSTATE RF001 where that returns
-- false. The engine sends a batch's checkpoint check, writes, checkpoint move and COMMIT in one
-- round trip: a failed check aborts the transaction, and its COMMIT rolls back.
--
-- It runs with the caller's rights: whoever calls it needs EXECUTE on `refract_advance`, which
-- makes the same checks as before, so it can be left executable by everyone.
CREATE OR REPLACE FUNCTION refract_advance_or_raise(p_key TEXT, from_xid BIGINT, from_pos BIGINT, to_xid BIGINT, to_pos BIGINT)
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT refract_advance(p_key, from_xid, from_pos, to_xid, to_pos) THEN
        RAISE EXCEPTION 'the checkpoint % is not at (%, %)', p_key, from_xid, from_pos USING ERRCODE = 'RF001';
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION refract_advance_or_raise(TEXT, BIGINT, BIGINT, BIGINT, BIGINT) SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
