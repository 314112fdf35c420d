//! Console sessions, kept in the store so any replica serves any session: the cookie holds a
//! random id, and the store holds only the id's SHA-256, the token sealed under the master key
//! (bound to that hash), the token's accessor, the display name and the one-shot message. The
//! CSRF token is derived from the id, so a copy of the database yields neither a usable
//! cookie, nor a token, nor a CSRF token.

use std::sync::Arc;

use crate::model::{ConsoleFlash, ConsoleSessionRecord, SealedValue};
use crate::seal::{ALNUM, SealError, Sealer, Secret, random_string, token_hash};
use crate::store::{Store, StoreError};

/// A session ends after this long, or when its token expires if that is sooner.
pub const LIFETIME_SECS: i64 = 8 * 3600;
/// 43 characters of 62: more than 256 bits.
const ID_LEN: usize = 43;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the token is unknown, expired or revoked; sign in with a valid token")]
    UnknownToken,
    #[error("a console session's token does not open under the master key: {0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A session just made: the cookie's value (to be set in the browser, and nowhere else) and
/// how long it lasts, in seconds (the cookie's `Max-Age`).
pub struct NewSession {
    pub id: Secret,
    pub lifetime_secs: u64,
}

/// A live session, as a request needs it.
pub struct ConsoleSession {
    pub token: Secret,
    pub csrf: String,
    pub display_name: String,
}

/// What the store keys a session by: never the id itself, which is the cookie.
fn id_hash(id: &str) -> Vec<u8> {
    token_hash(&format!("console-session\0{id}"))
}

fn context(id_hash: &[u8]) -> String {
    SealedValue::ConsoleSession {
        id_hash: id_hash.to_vec(),
    }
    .context()
}

/// The session's CSRF token: a one-way function of the id under its own label, so it needs no
/// column and cannot be computed from the stored hash.
pub fn csrf_of(id: &str) -> String {
    token_hash(&format!("console-csrf\0{id}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `id` could be one we made; anything else is refused without a read of the store.
fn well_formed(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Starts a session for `token`, which must be live: it ends after `LIFETIME_SECS`, or at the
/// token's own expiry if that comes first (a later renewal of the token does not extend it).
pub async fn open(
    store: &Arc<dyn Store>,
    sealer: &Sealer,
    token: &str,
    now: i64,
) -> Result<NewSession, SessionError> {
    let caller = super::authenticate(store, token, now)
        .await
        .map_err(|e| match e {
            super::AuthError::Store(s) => SessionError::Store(s),
            _ => SessionError::UnknownToken,
        })?
        .ok_or(SessionError::UnknownToken)?;
    let expire_at = match caller.token.expire_at {
        Some(t) => t.min(now + LIFETIME_SECS),
        None => now + LIFETIME_SECS,
    };
    let id = random_string(ID_LEN, ALNUM);
    let hash = id_hash(&id);
    let display_name = match caller.display_name.as_str() {
        "" => "token".to_owned(),
        name => name.to_owned(),
    };
    let record = ConsoleSessionRecord {
        token_sealed: sealer.seal(&context(&hash), token.as_bytes())?,
        id_hash: hash,
        token_accessor: caller.accessor,
        display_name,
        flash: None,
        created_at: now,
        expire_at,
    };
    if !store.insert_console_session(&record).await? {
        // Revoked between the check above and the insert.
        return Err(SessionError::UnknownToken);
    }
    Ok(NewSession {
        id: Secret::new(id),
        lifetime_secs: u64::try_from(expire_at - now).unwrap_or(0),
    })
}

/// The live session whose cookie is `id`, if any.
pub async fn find(
    store: &Arc<dyn Store>,
    sealer: &Sealer,
    id: &str,
    now: i64,
) -> Result<Option<ConsoleSession>, SessionError> {
    if !well_formed(id) {
        return Ok(None);
    }
    let hash = id_hash(id);
    let Some(row) = store.get_console_session(&hash, now).await? else {
        return Ok(None);
    };
    let token = sealer.open(&context(&hash), &row.token_sealed)?;
    let token = String::from_utf8(token).map_err(|_| SealError::Open)?;
    Ok(Some(ConsoleSession {
        token: Secret::new(token),
        csrf: csrf_of(id),
        display_name: row.display_name,
    }))
}

/// Leaves `flash` for the session's next page.
pub async fn set_flash(
    store: &Arc<dyn Store>,
    id: &str,
    flash: &ConsoleFlash,
    now: i64,
) -> Result<(), SessionError> {
    if well_formed(id) {
        store.set_console_flash(&id_hash(id), flash, now).await?;
    }
    Ok(())
}

/// The message left for this page, taken so no other page shows it.
pub async fn take_flash(
    store: &Arc<dyn Store>,
    id: &str,
    now: i64,
) -> Result<Option<ConsoleFlash>, SessionError> {
    if !well_formed(id) {
        return Ok(None);
    }
    Ok(store.take_console_flash(&id_hash(id), now).await?)
}

/// Ends the session, on every replica at once.
pub async fn end(store: &Arc<dyn Store>, id: &str) -> Result<(), SessionError> {
    if well_formed(id) {
        store.delete_console_session(&id_hash(id)).await?;
    }
    Ok(())
}

/// Ends every console session of this session's token; how many.
pub async fn end_everywhere(store: &Arc<dyn Store>, id: &str) -> Result<u64, SessionError> {
    if !well_formed(id) {
        return Ok(0);
    }
    Ok(store.delete_console_sessions_of_token(&id_hash(id)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_the_ids_own_and_not_its_stored_hash() {
        let id = random_string(ID_LEN, ALNUM);
        assert_eq!(csrf_of(&id), csrf_of(&id));
        assert_ne!(csrf_of(&id), csrf_of(&random_string(ID_LEN, ALNUM)));
        let hash: String = id_hash(&id).iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(
            csrf_of(&id),
            hash,
            "the store's key must not be the CSRF token"
        );
        assert_eq!(csrf_of(&id).len(), 64);
    }

    #[test]
    fn only_ids_we_could_have_made_reach_the_store() {
        assert!(well_formed(&random_string(ID_LEN, ALNUM)));
        for bad in [
            "",
            "short",
            &"a".repeat(ID_LEN + 1),
            &format!("{}'", "a".repeat(42)),
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }
}
