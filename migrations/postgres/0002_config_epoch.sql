-- One number every replica can read to tell whether the configuration it cached is still
-- current (`Store::config_epoch`): every insert, update or delete of a mount (its lease config
-- included), a role or a root config bumps it, in the same transaction as the change, so a
-- reader sees the change and the new epoch together. Cascaded deletes (a mount's roles and
-- root config) fire the triggers too. One row, read by its key. Concurrent writers queue on
-- that row until each commits (config writes are rare), so every commit gets its own value.
--
-- The triggers' names are lower-case, so they fire after the foreign-key triggers
-- ("RI_ConstraintTrigger_…") of the same statement: the epoch row is the last lock a
-- configuration write takes.

CREATE TABLE config_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);

INSERT INTO config_epoch (id, value) VALUES (1, 1);

CREATE FUNCTION bump_config_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_epoch SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER mounts_bump_config_epoch AFTER INSERT OR UPDATE OR DELETE ON mounts
    FOR EACH ROW EXECUTE FUNCTION bump_config_epoch();
CREATE TRIGGER roles_bump_config_epoch AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION bump_config_epoch();
CREATE TRIGGER root_configs_bump_config_epoch AFTER INSERT OR UPDATE OR DELETE ON root_configs
    FOR EACH ROW EXECUTE FUNCTION bump_config_epoch();
