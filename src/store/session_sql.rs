//! The SQL of console sessions (`console_sessions`), written once for both databases like
//! `sql.rs`. Rows are found by the hash of the session id and never honoured past `expire_at`;
//! the foreign key on `tokens(accessor)` deletes a token's sessions in the statement that
//! deletes the token, so every revocation path ends them in its own transaction.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use super::Result;
use super::rows::Columns;
use super::sql::Backend;
use crate::model::{ConsoleFlash, ConsoleSessionRecord};

/// What the store keeps and answers for console sessions.
#[async_trait]
pub trait ConsoleSessionStore: Send + Sync {
    /// A new session of the token `s.token_accessor` (with no message yet: `s.flash` is not
    /// written); false (nothing written) when that token is gone, so a session can never
    /// outlive a revocation that raced its sign-in.
    async fn insert_console_session(&self, s: &ConsoleSessionRecord) -> Result<bool>;
    /// The session with this id hash, unless it has expired by `now`.
    async fn get_console_session(
        &self,
        id_hash: &[u8],
        now: i64,
    ) -> Result<Option<ConsoleSessionRecord>>;
    /// Sets the message the session's next page shows (replacing one not yet shown). False
    /// when there is no live session.
    async fn set_console_flash(
        &self,
        id_hash: &[u8],
        flash: &ConsoleFlash,
        now: i64,
    ) -> Result<bool>;
    /// Takes the session's message: of two replicas taking it at once, one gets it.
    async fn take_console_flash(&self, id_hash: &[u8], now: i64) -> Result<Option<ConsoleFlash>>;
    /// Ends one session; false when there was none.
    async fn delete_console_session(&self, id_hash: &[u8]) -> Result<bool>;
    /// Ends every session of the token the session `id_hash` belongs to ("sign out
    /// everywhere"); how many.
    async fn delete_console_sessions_of_token(&self, id_hash: &[u8]) -> Result<u64>;
    /// Deletes the sessions expired by `now` (the reaper's tidy); how many.
    async fn delete_expired_console_sessions(&self, now: i64) -> Result<u64>;
}

const INSERT: &str = "INSERT INTO console_sessions (id_hash, token_sealed, token_accessor,
     display_name, created_at, expire_at)
     SELECT $1, $2, accessor, $4, $5, $6 FROM tokens WHERE accessor = $3";

const SELECT: &str = "SELECT id_hash, token_sealed, token_accessor, display_name, flash_text,
     flash_ok, created_at, expire_at FROM console_sessions WHERE id_hash = $1 AND expire_at > $2";

fn flash_of(row: &impl Columns) -> Result<Option<ConsoleFlash>> {
    Ok(match row.opt_text("flash_text")? {
        Some(text) => Some(ConsoleFlash {
            ok: row.opt_flag("flash_ok")?.unwrap_or(false),
            text,
        }),
        None => None,
    })
}

fn session_from_row(row: &impl Columns) -> Result<ConsoleSessionRecord> {
    Ok(ConsoleSessionRecord {
        id_hash: row.bytes("id_hash")?,
        token_sealed: row.bytes("token_sealed")?,
        token_accessor: row.text("token_accessor")?,
        display_name: row.text("display_name")?,
        flash: flash_of(row)?,
        created_at: row.int("created_at")?,
        expire_at: row.int("expire_at")?,
    })
}

#[async_trait]
impl<B> ConsoleSessionStore for B
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    <B::Db as Database>::Row: Columns,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Type<B::Db>,
{
    async fn insert_console_session(&self, s: &ConsoleSessionRecord) -> Result<bool> {
        let done = sqlx::query(INSERT)
            .bind(s.id_hash.as_slice())
            .bind(s.token_sealed.as_slice())
            .bind(s.token_accessor.as_str())
            .bind(s.display_name.as_str())
            .bind(s.created_at)
            .bind(s.expire_at)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn get_console_session(
        &self,
        id_hash: &[u8],
        now: i64,
    ) -> Result<Option<ConsoleSessionRecord>> {
        sqlx::query(SELECT)
            .bind(id_hash)
            .bind(now)
            .fetch_optional(self.pool())
            .await
            .map_err(B::map_err)?
            .as_ref()
            .map(session_from_row)
            .transpose()
    }

    async fn set_console_flash(
        &self,
        id_hash: &[u8],
        flash: &ConsoleFlash,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE console_sessions SET flash_text = $2, flash_ok = $3
             WHERE id_hash = $1 AND expire_at > $4",
        )
        .bind(id_hash)
        .bind(flash.text.as_str())
        .bind(flash.ok)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn take_console_flash(&self, id_hash: &[u8], now: i64) -> Result<Option<ConsoleFlash>> {
        let row = sqlx::query(
            "SELECT flash_text, flash_ok FROM console_sessions
             WHERE id_hash = $1 AND expire_at > $2 AND flash_text IS NOT NULL",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .map_err(B::map_err)?;
        let Some(flash) = row.as_ref().map(flash_of).transpose()?.flatten() else {
            return Ok(None);
        };
        // Cleared only if it is still the message read: a second taker (another replica, at
        // the same moment) finds it gone and shows nothing, so a message is shown once.
        let done = sqlx::query(
            "UPDATE console_sessions SET flash_text = NULL, flash_ok = NULL
             WHERE id_hash = $1 AND flash_text = $2",
        )
        .bind(id_hash)
        .bind(flash.text.as_str())
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok((B::rows_affected(&done) == 1).then_some(flash))
    }

    async fn delete_console_session(&self, id_hash: &[u8]) -> Result<bool> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done) == 1)
    }

    async fn delete_console_sessions_of_token(&self, id_hash: &[u8]) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM console_sessions WHERE token_accessor IN
             (SELECT token_accessor FROM console_sessions WHERE id_hash = $1)",
        )
        .bind(id_hash)
        .execute(self.pool())
        .await
        .map_err(B::map_err)?;
        Ok(B::rows_affected(&done))
    }

    async fn delete_expired_console_sessions(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expire_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(B::map_err)?;
        Ok(B::rows_affected(&done))
    }
}

#[cfg(test)]
mod tests {
    use super::ConsoleSessionStore;
    use crate::model::{ConsoleFlash, ConsoleSessionRecord, TokenRecord};
    use crate::store::{SqliteStore, Store};

    fn token(accessor: &str, parent: Option<&str>) -> TokenRecord {
        TokenRecord::plain(accessor.as_bytes().to_vec(), accessor, parent)
    }

    fn session(id: &str, accessor: &str, expire_at: i64) -> ConsoleSessionRecord {
        ConsoleSessionRecord {
            id_hash: id.as_bytes().to_vec(),
            token_sealed: b"sealed".to_vec(),
            token_accessor: accessor.into(),
            display_name: "alice".into(),
            flash: None,
            created_at: 100,
            expire_at,
        }
    }

    /// A session needs a live token, ends at `expire_at` (and is then tidied away), shows a
    /// message once, and goes with its token whatever revokes it: the whole tree, or a root
    /// whose children are orphaned (theirs stay).
    #[tokio::test]
    async fn sessions_end_with_their_time_their_sign_out_and_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        for (a, parent) in [("p", None), ("c", Some("p")), ("o", None)] {
            s.insert_token(&token(a, parent)).await.unwrap();
        }
        assert!(
            !s.insert_console_session(&session("gone", "no-such-token", 1_000))
                .await
                .unwrap(),
            "a session of a token that is gone is never written"
        );
        for (id, accessor) in [("p1", "p"), ("p2", "p"), ("c1", "c"), ("o1", "o")] {
            assert!(
                s.insert_console_session(&session(id, accessor, 1_000))
                    .await
                    .unwrap()
            );
        }
        s.insert_console_session(&session("short", "o", 200))
            .await
            .unwrap();

        let got = s.get_console_session(b"p1", 999).await.unwrap().unwrap();
        assert_eq!((got.token_accessor.as_str(), got.flash), ("p", None));
        assert!(s.get_console_session(b"p1", 1_000).await.unwrap().is_none());
        assert!(s.get_console_session(b"nope", 0).await.unwrap().is_none());

        let flash = ConsoleFlash {
            ok: true,
            text: "saved".into(),
        };
        assert!(s.set_console_flash(b"p1", &flash, 500).await.unwrap());
        assert!(!s.set_console_flash(b"p1", &flash, 1_000).await.unwrap());
        assert_eq!(
            s.get_console_session(b"p1", 500)
                .await
                .unwrap()
                .unwrap()
                .flash,
            Some(flash.clone())
        );
        assert_eq!(s.take_console_flash(b"p1", 500).await.unwrap(), Some(flash));
        assert_eq!(
            s.take_console_flash(b"p1", 500).await.unwrap(),
            None,
            "once"
        );

        assert_eq!(s.delete_expired_console_sessions(200).await.unwrap(), 1);
        assert!(s.delete_console_session(b"c1").await.unwrap());
        assert!(!s.delete_console_session(b"c1").await.unwrap());
        s.insert_console_session(&session("c1", "c", 1_000))
            .await
            .unwrap();

        // Revoking the root alone (children orphaned) ends only the root's sessions.
        s.revoke_token_tree("p", 500, true).await.unwrap();
        for (id, live) in [("p1", false), ("p2", false), ("c1", true), ("o1", true)] {
            let found = s.get_console_session(id.as_bytes(), 500).await.unwrap();
            assert_eq!(found.is_some(), live, "{id}");
        }
        s.revoke_token_tree("c", 500, false).await.unwrap();
        assert!(s.get_console_session(b"c1", 500).await.unwrap().is_none());

        // Sign out everywhere: every session of the token, no other.
        s.insert_token(&token("q", None)).await.unwrap();
        for id in ["q1", "q2"] {
            s.insert_console_session(&session(id, "q", 1_000))
                .await
                .unwrap();
        }
        assert_eq!(s.delete_console_sessions_of_token(b"q1").await.unwrap(), 2);
        assert_eq!(s.delete_console_sessions_of_token(b"q1").await.unwrap(), 0);
        assert!(s.get_console_session(b"o1", 500).await.unwrap().is_some());
    }
}
