-- Wake the engine when events are written: one NOTIFY per statement (a multi-row INSERT or a
-- COPY of a million rows notifies once), on the channel `refract_events`, with the schema as
-- payload. PostgreSQL folds identical notifications of one transaction into one.
CREATE OR REPLACE FUNCTION refract_notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('refract_events', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS refract_notify_events ON events;
CREATE TRIGGER refract_notify_events
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refract_notify_events();
