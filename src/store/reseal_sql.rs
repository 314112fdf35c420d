//! Re-sealing the whole store under a new master key (`iamlease operator rekey`), written once
//! for both databases like `sql.rs`: every sealed column is read, opened and sealed again by the
//! caller, and written back in **one transaction** together with the meta rows that say which
//! key the store is under now, so a crash at any point leaves the store wholly under the old key
//! or wholly under the new one.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::Result;
use super::StoreError;
use super::rows::Columns;
use super::sql::Backend;
use crate::model::{SEALED_META, SealedValue};

/// Opens a value sealed under the old key and seals it under the new one.
pub type Reseal<'a> =
    dyn Fn(&SealedValue, &[u8]) -> std::result::Result<Vec<u8>, String> + Send + Sync + 'a;

#[async_trait]
pub trait ResealStore: Send + Sync {
    /// Re-seals every sealed value with `reseal`, then writes the meta rows in `set` and deletes
    /// those in `remove`, all in one transaction. Returns how many values were re-sealed; on any
    /// error (a value that does not open) nothing is changed.
    async fn reseal_all(
        &self,
        reseal: &Reseal<'_>,
        set: &[(&str, &[u8])],
        remove: &[&str],
    ) -> Result<usize>;
}

#[async_trait]
impl<B> ResealStore for B
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    <B::Db as Database>::Row: Columns,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    for<'r> String: Decode<'r, B::Db> + Type<B::Db>,
    for<'r> Vec<u8>: Decode<'r, B::Db> + Type<B::Db>,
{
    async fn reseal_all(
        &self,
        reseal: &Reseal<'_>,
        set: &[(&str, &[u8])],
        remove: &[&str],
    ) -> Result<usize> {
        let refused = |what: &SealedValue, e: String| {
            StoreError::Corrupt(format!(
                "{what:?} does not open under the current master key: {e}"
            ))
        };
        let mut tx = self.pool().begin().await.map_err(B::map_err)?;
        let mut count = 0;

        for key in SEALED_META {
            let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
                .bind(*key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(B::map_err)?;
            let Some(row) = row else { continue };
            let what = SealedValue::Meta((*key).to_owned());
            let new = reseal(&what, &row.bytes("value")?).map_err(|e| refused(&what, e))?;
            sqlx::query("UPDATE meta SET value = $2 WHERE key = $1")
                .bind(*key)
                .bind(new.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(B::map_err)?;
            count += 1;
        }

        let rows = sqlx::query(
            "SELECT mount, secret_sealed FROM root_configs WHERE secret_sealed IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(B::map_err)?;
        for row in rows {
            let mount = row.text("mount")?;
            let what = SealedValue::RootConfig {
                mount: mount.clone(),
            };
            let new = reseal(&what, &row.bytes("secret_sealed")?).map_err(|e| refused(&what, e))?;
            sqlx::query("UPDATE root_configs SET secret_sealed = $2 WHERE mount = $1")
                .bind(mount.as_str())
                .bind(new.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(B::map_err)?;
            count += 1;
        }

        let rows = sqlx::query(
            "SELECT path, accessor, secret_sealed FROM auth_mounts WHERE secret_sealed IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(B::map_err)?;
        for row in rows {
            let what = SealedValue::AuthClientSecret {
                accessor: row.text("accessor")?,
            };
            let new = reseal(&what, &row.bytes("secret_sealed")?).map_err(|e| refused(&what, e))?;
            sqlx::query("UPDATE auth_mounts SET secret_sealed = $2 WHERE path = $1")
                .bind(row.text("path")?.as_str())
                .bind(new.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(B::map_err)?;
            count += 1;
        }

        let rows = sqlx::query("SELECT state_hash, mount, sealed FROM oidc_requests")
            .fetch_all(&mut *tx)
            .await
            .map_err(B::map_err)?;
        for row in rows {
            let what = SealedValue::OidcRequest {
                mount: row.text("mount")?,
            };
            let new = reseal(&what, &row.bytes("sealed")?).map_err(|e| refused(&what, e))?;
            let state_hash = row.bytes("state_hash")?;
            sqlx::query("UPDATE oidc_requests SET sealed = $2 WHERE state_hash = $1")
                .bind(state_hash.as_slice())
                .bind(new.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(B::map_err)?;
            count += 1;
        }

        let rows = sqlx::query(
            "SELECT mount, name, access_key_id, secret_sealed FROM static_roles
             WHERE secret_sealed IS NOT NULL AND access_key_id IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(B::map_err)?;
        for row in rows {
            let (mount, name) = (row.text("mount")?, row.text("name")?);
            let what = SealedValue::StaticRole {
                mount: mount.clone(),
                name: name.clone(),
                access_key_id: row.text("access_key_id")?,
            };
            let new = reseal(&what, &row.bytes("secret_sealed")?).map_err(|e| refused(&what, e))?;
            sqlx::query(
                "UPDATE static_roles SET secret_sealed = $3 WHERE mount = $1 AND name = $2",
            )
            .bind(mount.as_str())
            .bind(name.as_str())
            .bind(new.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
            count += 1;
        }

        let rows = sqlx::query("SELECT id_hash, token_sealed FROM console_sessions")
            .fetch_all(&mut *tx)
            .await
            .map_err(B::map_err)?;
        for row in rows {
            let id_hash = row.bytes("id_hash")?;
            let what = SealedValue::ConsoleSession {
                id_hash: id_hash.clone(),
            };
            let new = reseal(&what, &row.bytes("token_sealed")?).map_err(|e| refused(&what, e))?;
            sqlx::query("UPDATE console_sessions SET token_sealed = $2 WHERE id_hash = $1")
                .bind(id_hash.as_slice())
                .bind(new.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(B::map_err)?;
            count += 1;
        }

        for key in remove {
            sqlx::query("DELETE FROM meta WHERE key = $1")
                .bind(*key)
                .execute(&mut *tx)
                .await
                .map_err(B::map_err)?;
        }
        for (key, value) in set {
            // Portable upsert: both databases take `ON CONFLICT … DO UPDATE`.
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(*key)
            .bind(*value)
            .execute(&mut *tx)
            .await
            .map_err(B::map_err)?;
        }
        tx.commit().await.map_err(B::map_err)?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::ResealStore;
    use crate::model::SealedValue;
    use crate::store::{ConsoleSessionStore, SqliteStore, Store};

    #[tokio::test]
    async fn a_reseal_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        s.put_meta_if_absent("seal_check", b"old-check")
            .await
            .unwrap();
        s.put_meta_if_absent("audit_hmac_key", b"old-audit")
            .await
            .unwrap();
        s.put_meta_if_absent("cluster_id", b"not sealed")
            .await
            .unwrap();

        // The second value does not open: nothing changes, not even the first, nor the meta.
        let fails_on_audit = |what: &SealedValue, old: &[u8]| match what {
            SealedValue::Meta(k) if k == "audit_hmac_key" => Err("does not open".to_owned()),
            _ => Ok([b"new:", old].concat()),
        };
        let e = s
            .reseal_all(&fails_on_audit, &[("kms_data_key", b"wrapped")], &[])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("audit_hmac_key"), "{e}");
        assert_eq!(
            s.get_meta("seal_check").await.unwrap().unwrap(),
            b"old-check"
        );
        assert_eq!(s.get_meta("kms_data_key").await.unwrap(), None);

        // A console session's token is re-sealed too, under its own context.
        let token = crate::model::TokenRecord {
            policies: Vec::new(),
            display_name: "alice".into(),
            ..crate::model::TokenRecord::plain(b"h".to_vec(), "a", None)
        };
        s.insert_token(&token).await.unwrap();
        let session = crate::model::ConsoleSessionRecord {
            id_hash: vec![0xab, 0x01],
            token_sealed: b"old-token".to_vec(),
            token_accessor: "a".into(),
            display_name: "alice".into(),
            flash: None,
            created_at: 0,
            expire_at: 100,
        };
        assert!(s.insert_console_session(&session).await.unwrap());

        // All of it, and the meta rows set and removed, in one go; what is not sealed stays.
        let works = |what: &SealedValue, old: &[u8]| {
            if let SealedValue::ConsoleSession { .. } = what {
                assert_eq!(what.context(), "console-session:ab01");
            }
            Ok([b"new:", old].concat())
        };
        let n = s
            .reseal_all(&works, &[("kms_data_key", b"wrapped")], &[])
            .await
            .unwrap();
        assert_eq!(n, 3);
        let resealed = s.get_console_session(&[0xab, 0x01], 0).await.unwrap();
        assert_eq!(resealed.unwrap().token_sealed, b"new:old-token");
        assert_eq!(
            s.get_meta("seal_check").await.unwrap().unwrap(),
            b"new:old-check"
        );
        assert_eq!(
            s.get_meta("audit_hmac_key").await.unwrap().unwrap(),
            b"new:old-audit"
        );
        assert_eq!(
            s.get_meta("cluster_id").await.unwrap().unwrap(),
            b"not sealed"
        );
        assert_eq!(
            s.get_meta("kms_data_key").await.unwrap().unwrap(),
            b"wrapped"
        );
        s.reseal_all(&works, &[], &["kms_data_key"]).await.unwrap();
        assert_eq!(s.get_meta("kms_data_key").await.unwrap(), None);
    }
}
