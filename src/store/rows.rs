//! Row decoders shared by both stores: a row's columns in the types the schema stores, and
//! each record built from them. A value that does not decode is corrupt data.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{
    AuthMountRecord, AuthRoleRecord, MountRecord, Result, RootConfigRecord, SecretIdRecord,
    StoreError, TokenRecord,
};
use crate::model::{
    AuthKind, CredentialType, KeyHistory, KeyRecord, Lease, LeaseState, LiveLease, MountPath,
    RoleName,
};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// A row's columns by name, in the types the schema stores; a value that does not decode is
/// corrupt data. (SQLite keeps `renewable` as an integer, which its driver reads as a bool.)
pub(super) trait Columns {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn flag(&self, column: &str) -> Result<bool>;
    fn opt_flag(&self, column: &str) -> Result<Option<bool>>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;
}

impl<R: Row> Columns for R
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, c: &str) -> Result<String> {
        self.try_get(c).map_err(|e| corrupt(c, e))
    }
    fn opt_text(&self, c: &str) -> Result<Option<String>> {
        self.try_get(c).map_err(|e| corrupt(c, e))
    }
    fn int(&self, c: &str) -> Result<i64> {
        self.try_get(c).map_err(|e| corrupt(c, e))
    }
    fn opt_int(&self, c: &str) -> Result<Option<i64>> {
        self.try_get(c).map_err(|e| corrupt(c, e))
    }
    fn flag(&self, c: &str) -> Result<bool> {
        self.try_get(c).map_err(|e| corrupt(c, e))
    }
    fn opt_flag(&self, c: &str) -> Result<Option<bool>> {
        self.try_get(c).map_err(|e| corrupt(c, e))
    }
    fn bytes(&self, c: &str) -> Result<Vec<u8>> {
        self.try_get(c).map_err(|e| corrupt(c, e))
    }
    fn opt_bytes(&self, c: &str) -> Result<Option<Vec<u8>>> {
        self.try_get(c).map_err(|e| corrupt(c, e))
    }
}

fn credential_type(row: &impl Columns) -> Result<CredentialType> {
    let ctype = row.text("credential_type")?;
    serde_json::from_value::<CredentialType>(serde_json::Value::String(ctype))
        .map_err(|e| corrupt("credential_type", e))
}

fn lease_state(row: &impl Columns, column: &str) -> Result<Option<LeaseState>> {
    row.opt_text(column)?
        .map(|s| LeaseState::parse(&s).ok_or_else(|| corrupt(column, &s)))
        .transpose()
}

fn mount_and_role(row: &impl Columns) -> Result<(MountPath, RoleName)> {
    Ok((
        MountPath::parse(&row.text("mount")?).map_err(|e| corrupt("mount", e))?,
        RoleName::parse(&row.text("role")?).map_err(|e| corrupt("role", e))?,
    ))
}

pub(super) fn lease_from_row(row: &impl Columns) -> Result<Lease> {
    let (mount, role) = mount_and_role(row)?;
    Ok(Lease {
        id: row.text("id")?,
        mount,
        role,
        credential_type: credential_type(row)?,
        state: lease_state(row, "state")?.ok_or_else(|| corrupt("state", "NULL"))?,
        username: row.opt_text("username")?,
        access_key_id: row.opt_text("access_key_id")?,
        issue_time: row.int("issue_time")?,
        expire_time: row.int("expire_time")?,
        max_expire_time: row.int("max_expire_time")?,
        last_renewal: row.opt_int("last_renewal")?,
        ttl: row.int("ttl")?,
        renewable: row.flag("renewable")?,
        due_at: row.int("due_at")?,
        attempts: row.int("attempts")?,
        last_error: row.opt_text("last_error")?,
        token_accessor: row.opt_text("token_accessor")?,
    })
}

pub(super) fn key_record_from_row(row: &impl Columns) -> Result<KeyRecord> {
    let (mount, role) = mount_and_role(row)?;
    Ok(KeyRecord {
        access_key_id: row.text("access_key_id")?,
        lease_id: row.text("lease_id")?,
        mount,
        role,
        credential_type: credential_type(row)?,
        username: row.opt_text("username")?,
        requester: row.text("requester")?,
        token_accessor: row.opt_text("token_accessor")?,
        meta: from_json(row, "meta")?,
        issue_time: row.int("issue_time")?,
        expire_time: row.int("expire_time")?,
        revoke_time: row.opt_int("revoke_time")?,
    })
}

/// A `key_history` row joined with its lease (`lease_state`, `lease_expire_time`; NULL once
/// the lease has ended).
pub(super) fn key_history_from_row(row: &impl Columns) -> Result<KeyHistory> {
    let lease = match lease_state(row, "lease_state")? {
        Some(state) => Some(LiveLease {
            state,
            expire_time: row.int("lease_expire_time")?,
        }),
        None => None,
    };
    Ok(KeyHistory {
        key: key_record_from_row(row)?,
        lease,
    })
}

pub(super) fn token_from_row(row: &impl Columns) -> Result<TokenRecord> {
    Ok(TokenRecord {
        hash: row.bytes("hash")?,
        accessor: row.text("accessor")?,
        policies: from_json(row, "policies")?,
        display_name: row.text("display_name")?,
        created_at: row.int("created_at")?,
        expire_at: row.opt_int("expire_at")?,
        ttl: row.opt_int("ttl")?,
        parent_accessor: row.opt_text("parent_accessor")?,
        orphan: row.flag("orphan")?,
        num_uses: row.int("num_uses")?,
        period: row.opt_int("period")?,
        explicit_max_ttl: row.opt_int("explicit_max_ttl")?,
        meta: from_json(row, "meta")?,
        renewable: row.flag("renewable")?,
        path: row.text("path")?,
        auth_accessor: row.opt_text("auth_accessor")?,
        max_ttl: row.opt_int("max_ttl")?,
        bound_cidrs: from_json(row, "bound_cidrs")?,
    })
}

pub(super) fn mount_from_row(row: &impl Columns) -> Result<MountRecord> {
    Ok(MountRecord {
        path: MountPath::parse(&row.text("path")?).map_err(|e| corrupt("path", e))?,
        kind: row.text("kind")?,
        description: row.text("description")?,
        default_lease_ttl: row.opt_int("default_lease_ttl")?,
        max_lease_ttl: row.opt_int("max_lease_ttl")?,
        lease_ttl: row.opt_int("lease_ttl")?,
        lease_max: row.opt_int("lease_max")?,
        created_at: row.int("created_at")?,
    })
}

pub(super) fn root_config_from_row(row: &impl Columns) -> Result<RootConfigRecord> {
    Ok(RootConfigRecord {
        config: row.text("config")?,
        secret_sealed: row.opt_bytes("secret_sealed")?,
        version: row.int("version")?,
    })
}

pub(super) fn auth_mount_from_row(row: &impl Columns) -> Result<AuthMountRecord> {
    let kind = row.text("kind")?;
    Ok(AuthMountRecord {
        path: MountPath::parse(&row.text("path")?).map_err(|e| corrupt("path", e))?,
        kind: AuthKind::parse(&kind).map_err(|e| corrupt("kind", e))?,
        accessor: row.text("accessor")?,
        description: row.text("description")?,
        config: row.text("config")?,
        secret_sealed: row.opt_bytes("secret_sealed")?,
        default_lease_ttl: row.opt_int("default_lease_ttl")?,
        max_lease_ttl: row.opt_int("max_lease_ttl")?,
        created_at: row.int("created_at")?,
    })
}

pub(super) fn auth_role_from_row(row: &impl Columns) -> Result<AuthRoleRecord> {
    Ok(AuthRoleRecord {
        name: RoleName::parse(&row.text("name")?).map_err(|e| corrupt("name", e))?,
        body: row.text("body")?,
        role_id: row.opt_text("role_id")?,
    })
}

/// A column holding JSON (lists and maps).
fn from_json<T: serde::de::DeserializeOwned>(row: &impl Columns, column: &str) -> Result<T> {
    serde_json::from_str(&row.text(column)?).map_err(|e| corrupt(column, e))
}

pub(super) fn secret_id_from_row(row: &impl Columns) -> Result<SecretIdRecord> {
    Ok(SecretIdRecord {
        hash: row.bytes("hash")?,
        accessor: row.text("accessor")?,
        mount: MountPath::parse(&row.text("mount")?).map_err(|e| corrupt("mount", e))?,
        role: RoleName::parse(&row.text("role")?).map_err(|e| corrupt("role", e))?,
        uses_left: row.int("uses_left")?,
        ttl: row.int("ttl")?,
        expire_at: row.opt_int("expire_at")?,
        cidr_list: from_json(row, "cidr_list")?,
        token_bound_cidrs: from_json(row, "token_bound_cidrs")?,
        metadata: from_json(row, "metadata")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}
