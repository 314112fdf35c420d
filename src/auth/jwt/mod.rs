//! JWT/OIDC auth (Vault's `jwt` and `oidc` methods): workloads log in with a token their
//! platform signed (GitHub Actions, GitLab, Kubernetes), people through their provider's
//! browser sign-in. Keys come from discovery, a JWKS URL or PEMs and are cached per mount.

mod algs;
mod bound;
mod cache;
mod claims;
mod error;
mod header;
mod keys;
mod login;
pub mod oidc;
mod pem;
mod settings;
#[cfg(test)]
mod test_support;
mod verify;

pub use bound::{BoundClaimsType, BoundValues};
pub use cache::KeyCache;
pub use error::JwtError;
pub use login::{JwtMount, SecretChange, login, mount, read_role, write_config, write_role};
pub use settings::{JwtConfig, JwtRole, RoleType};
