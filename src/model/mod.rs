//! The records every layer passes around: leases, mount and role names, credential kinds, the
//! access-key history, static roles, console sessions, the rows the store keeps and what of
//! them is sealed. Below both `engine/` and `store/`, so neither imports the other's types;
//! nothing here does I/O.

mod auth;
mod console_session;
mod history;
mod lease;
mod names;
mod records;
mod sealed;
mod static_role;

pub use auth::{AuthKind, AuthMountRecord, AuthRoleRecord, SecretIdRecord};
pub use console_session::{ConsoleFlash, ConsoleSessionRecord};
pub use history::{AccessKeyId, KeyHistory, KeyRecord, KeyState, LiveLease};
pub use lease::{Lease, LeaseState, lease_id_under, new_lease_id};
pub use names::{CredentialType, MountPath, RoleName};
pub use records::{
    LeaseStats, MountRecord, ReplicaRecord, RootConfigRecord, TakeOver, TokenRecord,
    TokenRevocation,
};
pub use sealed::{SEALED_META, SealedValue};
pub use static_role::{IamUserName, RotationStep, StaticRoleConfig, StaticRoleRecord};
