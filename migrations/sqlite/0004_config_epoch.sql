-- One number every replica can read to tell whether the configuration it cached is still
-- current (`Store::config_epoch`): every insert, update or delete of a mount (its lease config
-- included), a role or a root config bumps it, in the same transaction as the change. Cascaded
-- deletes (a mount's roles and root config) fire the triggers too. One row, read by its key.

CREATE TABLE config_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);

INSERT INTO config_epoch (id, value) VALUES (1, 1);

CREATE TRIGGER mounts_insert_bumps_config_epoch AFTER INSERT ON mounts
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER mounts_update_bumps_config_epoch AFTER UPDATE ON mounts
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER mounts_delete_bumps_config_epoch AFTER DELETE ON mounts
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER roles_insert_bumps_config_epoch AFTER INSERT ON roles
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER roles_update_bumps_config_epoch AFTER UPDATE ON roles
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER roles_delete_bumps_config_epoch AFTER DELETE ON roles
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;

CREATE TRIGGER root_configs_insert_bumps_config_epoch AFTER INSERT ON root_configs
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER root_configs_update_bumps_config_epoch AFTER UPDATE ON root_configs
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER root_configs_delete_bumps_config_epoch AFTER DELETE ON root_configs
BEGIN UPDATE config_epoch SET value = value + 1 WHERE id = 1; END;
