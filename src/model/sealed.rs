//! What the store keeps sealed under the master key, each value named by what its seal is
//! bound to (the AES-GCM associated data): one place for every seal context, so re-sealing
//! the whole store under a new master key (`iamlease operator rekey`) misses none.

/// One sealed value in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedValue {
    /// A `meta` row sealed under its own key name (the seal check, the audit HMAC key).
    Meta(String),
    /// A mount's root config secret key.
    RootConfig { mount: String },
    /// A JWT/OIDC auth mount's `oidc_client_secret`, bound to the mount's accessor.
    AuthClientSecret { accessor: String },
    /// An OIDC sign-in waiting for its callback.
    OidcRequest { mount: String },
    /// A static role's current secret key, bound to the role and the key's id.
    StaticRole {
        mount: String,
        name: String,
        access_key_id: String,
    },
    /// A console session's token, bound to the hash of the session's id, so a sealed token
    /// moved to another session's row does not open.
    ConsoleSession { id_hash: Vec<u8> },
}

/// The `meta` rows that are sealed (the others, such as the cluster id, are not secret).
pub const SEALED_META: &[&str] = &["seal_check", "audit_hmac_key"];

impl SealedValue {
    /// The associated data the value is sealed with.
    pub fn context(&self) -> String {
        match self {
            SealedValue::Meta(key) => key.clone(),
            SealedValue::RootConfig { mount } => format!("root_config:{mount}"),
            SealedValue::AuthClientSecret { accessor } => format!("auth-client-secret:{accessor}"),
            SealedValue::OidcRequest { mount } => format!("oidc-request:{mount}"),
            SealedValue::StaticRole {
                mount,
                name,
                access_key_id,
            } => format!("static_role:{mount}/{name}:{access_key_id}"),
            SealedValue::ConsoleSession { id_hash } => {
                let hex: String = id_hash.iter().map(|b| format!("{b:02x}")).collect();
                format!("console-session:{hex}")
            }
        }
    }
}
