//! The master key at start-up — from `IAMLEASE_MASTER_KEY`, a file (made on a first start), or
//! AWS KMS (a data key whose KMS ciphertext the store keeps, unwrapped with `kms:Decrypt`) — and
//! `iamlease operator rekey`, which moves a store to a new master key (a file's or KMS's),
//! re-sealing everything it keeps in one transaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{StartupError, write_private_file};
use crate::aws::{AwsError, MasterKeyKms};
use crate::config::{KmsSettings, MasterKeySource, Settings};
use crate::seal::{MasterKey, Sealer};
use crate::store::Store;

/// The meta row holding KMS's ciphertext of the master key (absent for a file key).
const KMS_DATA_KEY: &str = "kms_data_key";
/// The meta row `Engine::check_master_key` seals a probe in: present once a key was used.
const SEAL_CHECK: &str = "seal_check";

/// The KMS client for this store's master key. The encryption context names the store (its
/// cluster id), so KMS refuses a ciphertext copied from another store.
async fn kms_for(kms: &KmsSettings, store: &dyn Store) -> Result<MasterKeyKms, StartupError> {
    let cluster = crate::api::cluster_id(store).await?;
    let context = HashMap::from([
        ("iamlease".to_owned(), "master-key".to_owned()),
        ("cluster_id".to_owned(), cluster),
    ]);
    Ok(MasterKeyKms::connect(
        &kms.key_id,
        kms.endpoint.as_deref(),
        kms.region.as_deref(),
        context,
    )
    .await)
}

fn kms_error(kms: &KmsSettings, e: AwsError) -> StartupError {
    StartupError::Kms(format!(
        "cannot use AWS KMS key {} for the master key: {e}. Check kms_key_id, kms_region and \
         kms_endpoint, and that this server's AWS credentials (the default chain) may call \
         kms:GenerateDataKey and kms:Decrypt on that key",
        kms.key_id
    ))
}

/// The master key `source` names, checked against what the store says it is under: a store
/// under KMS is never opened with a file key, nor the reverse. `create` makes a missing key file
/// (a first start); the rekey path never does.
pub(super) async fn load(
    source: &MasterKeySource,
    store: &dyn Store,
    create: bool,
) -> Result<MasterKey, StartupError> {
    let wrapped = store.get_meta(KMS_DATA_KEY).await?;
    match source {
        MasterKeySource::Kms(kms) => from_kms(kms, store, wrapped).await,
        _ if wrapped.is_some() => Err(StartupError::Kms(
            "this store's master key is under AWS KMS: set kms_key_id (IAMLEASE_KMS_KEY_ID) to its \
             KMS key, or move it to a file with `iamlease operator rekey --to-master-key-file PATH`"
                .into(),
        )),
        MasterKeySource::Inline(key) => Ok(key.clone()),
        MasterKeySource::Ephemeral => Ok(MasterKey::generate()?),
        MasterKeySource::File(path) => from_file(path, create),
    }
}

fn from_file(path: &Path, create: bool) -> Result<MasterKey, StartupError> {
    let err = |source| StartupError::MasterKeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(MasterKey::from_base64(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = MasterKey::generate()?;
            write_private_file(path, key.to_base64().as_bytes()).map_err(err)?;
            tracing::info!(path = %path.display(), "created a new master key file (mode 0600); back it up");
            Ok(key)
        }
        Err(e) => Err(err(e)),
    }
}

async fn from_kms(
    kms: &KmsSettings,
    store: &dyn Store,
    wrapped: Option<Vec<u8>>,
) -> Result<MasterKey, StartupError> {
    let client = kms_for(kms, store).await?;
    let wrapped = match wrapped {
        Some(w) => w,
        None => {
            // Re-read after the check: a replica starting at the same moment may have made
            // the KMS key (and then the seal check) in between.
            if store.get_meta(SEAL_CHECK).await?.is_some()
                && store.get_meta(KMS_DATA_KEY).await?.is_none()
            {
                return Err(StartupError::Kms(
                    "this store was created with a master key file (or IAMLEASE_MASTER_KEY); move \
                     that key under KMS first: `iamlease operator rekey --to-kms-key-id …`"
                        .into(),
                ));
            }
            let fresh = client.generate().await.map_err(|e| kms_error(kms, e))?;
            if store
                .put_meta_if_absent(KMS_DATA_KEY, &fresh.ciphertext)
                .await?
            {
                tracing::info!(key = %kms.key_id, "created the master key under AWS KMS");
                return Ok(MasterKey::from_bytes(&fresh.plaintext)?);
            }
            // Another replica made it first: everyone uses that one.
            store
                .get_meta(KMS_DATA_KEY)
                .await?
                .ok_or_else(|| StartupError::Kms("the KMS data key vanished".into()))?
        }
    };
    let plain = client
        .unwrap(&wrapped)
        .await
        .map_err(|e| kms_error(kms, e))?;
    Ok(MasterKey::from_bytes(&plain)?)
}

type MetaRows = Vec<(&'static str, Vec<u8>)>;

/// Where `iamlease operator rekey` moves the store's master key.
#[derive(Debug, Clone)]
pub enum RekeyTarget {
    /// A new data key under this KMS key.
    Kms(KmsSettings),
    /// A new key in this file (one an interrupted rekey left there is used again).
    File(PathBuf),
}

/// Moves the store to a new master key: opens every sealed value with the current key (what
/// `settings` name), seals it with the new one, and records where the key now lives, all in one
/// transaction, so a crash leaves the store wholly under one key. The new key is durable (in
/// KMS, or in its file) before that transaction commits. Returns how many values were re-sealed.
/// Every server on the store must be stopped first: they hold the old key.
pub async fn rekey(settings: &Settings, target: &RekeyTarget) -> Result<usize, StartupError> {
    let storage = settings.storage.as_deref().ok_or_else(|| {
        StartupError::Kms("rekey needs the store: set storage (or IAMLEASE_STORAGE)".into())
    })?;
    let store = crate::store::open(storage).await?;
    let done = rekey_store(&settings.master_key, store.as_ref(), target).await;
    store.close().await;
    done
}

async fn rekey_store(
    source: &MasterKeySource,
    store: &dyn Store,
    target: &RekeyTarget,
) -> Result<usize, StartupError> {
    let old = load(source, store, false).await?;
    let old_sealer = Sealer::new(&old);
    if let Some(check) = store.get_meta(SEAL_CHECK).await?
        && old_sealer.open(SEAL_CHECK, &check).is_err()
    {
        return Err(StartupError::Kms(
            "the current master key does not open this store (did an earlier rekey finish? then \
             the store is under the new key already)"
                .into(),
        ));
    }
    // The new key, the meta rows that say where it lives now, and the ones that no longer do.
    let (new, set, remove): (MasterKey, MetaRows, Vec<&str>) = match target {
        RekeyTarget::Kms(kms) => {
            let client = kms_for(kms, store).await?;
            let fresh = client.generate().await.map_err(|e| kms_error(kms, e))?;
            let key = MasterKey::from_bytes(&fresh.plaintext)?;
            (key, vec![(KMS_DATA_KEY, fresh.ciphertext)], Vec::new())
        }
        RekeyTarget::File(path) => {
            let key = from_file(path, true)?;
            if key.to_base64() == old.to_base64() {
                return Err(StartupError::Kms(format!(
                    "{} already holds the current master key; name a new file",
                    path.display()
                )));
            }
            (key, Vec::new(), vec![KMS_DATA_KEY])
        }
    };
    let new_sealer = Sealer::new(&new);
    let reseal = |what: &crate::model::SealedValue, sealed: &[u8]| {
        let context = what.context();
        let plain = old_sealer
            .open(&context, sealed)
            .map_err(|e| e.to_string())?;
        new_sealer.seal(&context, &plain).map_err(|e| e.to_string())
    };
    let set: Vec<(&str, &[u8])> = set.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    Ok(store.reseal_all(&reseal, &set, &remove).await?)
}
