//! The secrets area: each owner's encrypted secrets, the port that keeps them and the use
//! cases that seal, open and re-wrap them ([`crate::crypto`] does the cryptography).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::RandomSource;
use crate::authz::{OwnerScope, SystemScope};
use crate::crypto::{self, MasterKeys, Sealed, SecretValue};
use crate::db::{self, Transactions, Tx};
use crate::error::{Error, Result};
use crate::events;
use crate::identity::UserStatus;
use crate::ids::{OwnerId, SecretName};
use crate::quotas::{self, Quotas};

/// A secret's metadata: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Its name.
    pub name: SecretName,
    /// When first written.
    pub created_at: OffsetDateTime,
    /// When last written.
    pub updated_at: OffsetDateTime,
}

/// Per-owner encrypted secrets. Encryption happens outside the store; it keeps sealed bytes.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The owner's wrapped data key, if one exists.
    async fn data_key(&self, scope: &OwnerScope) -> Result<Option<Sealed>>;

    /// Writes a secret. `new_data_key` is stored only when the owner has none yet (in the
    /// same transaction); if another writer installed one first, [`crate::Error::Conflict`]
    /// and nothing is written, so the caller re-reads the key and retries.
    async fn put_secret(
        &self,
        scope: &OwnerScope,
        name: &SecretName,
        value: Sealed,
        new_data_key: Option<Sealed>,
    ) -> Result<SecretMeta>;

    /// One sealed value from the owner's scope only.
    async fn get_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<Option<Sealed>>;

    /// Names and metadata.
    async fn list_secrets(&self, scope: &OwnerScope) -> Result<Vec<SecretMeta>>;

    /// Deletes one. [`crate::Error::NotFound`] if absent.
    async fn delete_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<()>;

    /// Every owner's wrapped data key (for rewrapping).
    async fn all_data_keys(&self, scope: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>>;

    /// Replaces wrapped data keys (the rewrapped forms), each only if it still equals the
    /// one read. Returns how many were replaced.
    async fn replace_data_keys(
        &self,
        scope: &SystemScope,
        keys: &[(OwnerId, Sealed, Sealed)],
    ) -> Result<u64>;
}

/// The secret rows a transaction reads and writes: SQL and row mapping, no decisions.
#[async_trait]
pub trait SecretRows: Tx {
    /// The owner's wrapped data key.
    async fn owner_key(&mut self, owner: &OwnerId) -> Result<Option<Sealed>>;
    /// Inserts the owner's wrapped data key, created `at`.
    async fn insert_owner_key(
        &mut self,
        owner: &OwnerId,
        key: &Sealed,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// Every owner's wrapped data key, by owner in byte order.
    async fn owner_keys(&mut self) -> Result<Vec<(OwnerId, Sealed)>>;
    /// Replaces the owner's wrapped data key by `new` if it still is `old`. Whether it did.
    async fn swap_owner_key(&mut self, owner: &OwnerId, old: &Sealed, new: &Sealed)
    -> Result<bool>;
    /// Inserts the secret, or replaces its value (keeping `created_at`), written `at`;
    /// returns it as stored.
    async fn upsert_secret(
        &mut self,
        owner: &OwnerId,
        name: &SecretName,
        value: &Sealed,
        at: OffsetDateTime,
    ) -> Result<SecretMeta>;
    /// One sealed value.
    async fn secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<Option<Sealed>>;
    /// Whether the owner holds a secret of that name.
    async fn has_secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<bool>;
    /// The owner's secrets, by name in byte order.
    async fn secrets_of(&mut self, owner: &OwnerId) -> Result<Vec<SecretMeta>>;
    /// Deletes one. Whether it existed.
    async fn remove_secret(&mut self, owner: &OwnerId, name: &SecretName) -> Result<bool>;
    /// How many secrets the owner holds, and the total length of their ciphertexts (tags
    /// included).
    async fn secret_usage(&mut self, owner: &OwnerId) -> Result<SecretUsage>;
}

/// What [`SecretRows::secret_usage`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretUsage {
    /// Secrets held.
    pub count: u64,
    /// Sum of their ciphertext lengths, tags included.
    pub ciphertext_bytes: u64,
}

impl SecretUsage {
    /// The bytes of the values as written (each ciphertext without its tag).
    pub fn value_bytes(&self) -> u64 {
        self.ciphertext_bytes
            .saturating_sub(self.count.saturating_mul(crypto::TAG_BYTES as u64))
    }
}

/// The secret quotas, checked inside the transaction that writes `value` under `name`: a
/// new name counts one more secret, a replaced value gives back its old length.
async fn check_secret_quota<T: SecretRows + ?Sized>(
    tx: &mut T,
    quotas: &Quotas,
    owner: &OwnerId,
    name: &SecretName,
    value: &Sealed,
) -> Result<()> {
    let usage = tx.secret_usage(owner).await?;
    let (count, bytes) = match tx.secret(owner, name).await? {
        Some(old) => (
            usage.count,
            usage.value_bytes().saturating_sub(old.sealed_len()),
        ),
        None => (usage.count.saturating_add(1), usage.value_bytes()),
    };
    quotas::within("secrets", count, 0, quotas.secrets)?;
    quotas::within(
        "secret bytes",
        bytes,
        value.sealed_len(),
        quotas.secret_bytes,
    )
}

/// The scope's owner when their account exists and is active as it is in `tx`;
/// [`Error::NotFound`] otherwise (nothing is written for a gone or suspended owner).
pub(crate) async fn active_owner<'s, T: Tx + ?Sized>(
    tx: &mut T,
    scope: &'s OwnerScope,
) -> Result<&'s OwnerId> {
    let owner = scope.owner();
    match tx.actor_state(owner).await? {
        Some(state) if state.status == UserStatus::Active => Ok(owner),
        _ => Err(Error::NotFound),
    }
}

/// Every database keeps secrets: each use case once, over [`SecretRows`].
#[async_trait]
impl<D> SecretStore for D
where
    D: Transactions,
    D::Tx: SecretRows,
{
    async fn data_key(&self, scope: &OwnerScope) -> Result<Option<Sealed>> {
        let owner = scope.owner().clone();
        self.read(move |tx| Box::pin(async move { tx.owner_key(&owner).await }))
            .await
    }

    async fn put_secret(
        &self,
        scope: &OwnerScope,
        name: &SecretName,
        value: Sealed,
        new_data_key: Option<Sealed>,
    ) -> Result<SecretMeta> {
        let (scope, name) = (scope.clone(), name.clone());
        let quotas = self.limits().quotas;
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = active_owner(tx, &scope).await?;
                check_secret_quota(tx, &quotas, owner, &name, &value).await?;
                // The data key is installed once: a writer that found none and brings one
                // loses to any writer that installed one meanwhile.
                let has_key = tx.owner_key(owner).await?.is_some();
                match (&new_data_key, has_key) {
                    (Some(key), false) => tx.insert_owner_key(owner, key, now).await?,
                    (Some(_), true) => {
                        return Err(Error::Conflict(
                            "a data key was installed meanwhile; read it and retry".into(),
                        ));
                    }
                    (None, false) => {
                        return Err(Error::Conflict("the owner has no data key yet".into()));
                    }
                    (None, true) => {}
                }
                let meta = tx.upsert_secret(owner, &name, &value, now).await?;
                tx.append(events::secret_put(now, scope.actor(), owner, &name))
                    .await?;
                Ok(meta)
            })
        })
        .await
    }

    async fn get_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<Option<Sealed>> {
        let (owner, name) = (scope.owner().clone(), name.clone());
        self.read(move |tx| Box::pin(async move { tx.secret(&owner, &name).await }))
            .await
    }

    async fn list_secrets(&self, scope: &OwnerScope) -> Result<Vec<SecretMeta>> {
        let owner = scope.owner().clone();
        self.read(move |tx| Box::pin(async move { tx.secrets_of(&owner).await }))
            .await
    }

    async fn delete_secret(&self, scope: &OwnerScope, name: &SecretName) -> Result<()> {
        let (scope, name) = (scope.clone(), name.clone());
        db::write(self, move |tx| {
            Box::pin(async move {
                let now = tx.now();
                let owner = scope.owner();
                if !tx.remove_secret(owner, &name).await? {
                    return Err(Error::NotFound);
                }
                tx.append(events::secret_deleted(now, scope.actor(), owner, &name))
                    .await
            })
        })
        .await
    }

    async fn all_data_keys(&self, _scope: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>> {
        self.read(|tx| Box::pin(async move { tx.owner_keys().await }))
            .await
    }

    async fn replace_data_keys(
        &self,
        _scope: &SystemScope,
        keys: &[(OwnerId, Sealed, Sealed)],
    ) -> Result<u64> {
        let keys = keys.to_vec();
        db::write(self, move |tx| {
            Box::pin(async move {
                let mut replaced = 0_u64;
                for (owner, old, new) in &keys {
                    replaced += u64::from(tx.swap_owner_key(owner, old, new).await?);
                }
                if replaced > 0 {
                    tx.append(events::secrets_rewrapped(tx.now(), replaced))
                        .await?;
                }
                Ok(replaced)
            })
        })
        .await
    }
}

/// The owner's data key, unwrapped; `None` when the owner has none yet.
pub(crate) async fn owner_data_key<S: SecretStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
) -> Result<Option<crypto::DataKey>> {
    match store.data_key(scope).await? {
        Some(wrapped) => crypto::unwrap_data_key(keys, scope.owner(), &wrapped).map(Some),
        None => Ok(None),
    }
}

/// Writes one of the owner's secrets, sealed under their data key.
///
/// The owner's first secret also creates the data key: a new random key is wrapped under
/// the current master key and handed to the store with the value, which installs both in
/// one transaction. If another writer installed a data key first, the store answers
/// [`Error::Conflict`]; the key is then read again and the write retried once.
pub async fn put_secret<S: SecretStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
    name: &SecretName,
    value: &str,
    rng: &mut (dyn RandomSource + Send),
) -> Result<SecretMeta> {
    crypto::check_value(value)?;
    let owner = scope.owner();
    if let Some(key) = owner_data_key(store, keys, scope).await? {
        let sealed = crypto::seal_value(&key, owner, name, value, rng)?;
        return store.put_secret(scope, name, sealed, None).await;
    }
    let key = crypto::DataKey::generate(rng);
    let wrapped = crypto::wrap_data_key(keys.current(), owner, &key, rng)?;
    let sealed = crypto::seal_value(&key, owner, name, value, rng)?;
    match store.put_secret(scope, name, sealed, Some(wrapped)).await {
        Err(Error::Conflict(_)) => {
            let key = owner_data_key(store, keys, scope).await?.ok_or_else(|| {
                Error::Conflict("the data key changed during the write; retry".into())
            })?;
            let sealed = crypto::seal_value(&key, owner, name, value, rng)?;
            store.put_secret(scope, name, sealed, None).await
        }
        other => other,
    }
}

/// One of the owner's secret values, opened; `None` when the owner holds no secret of that
/// name. Only resource credentials read values: no route returns them to their owner.
pub async fn secret_value<S: SecretStore + ?Sized>(
    store: &S,
    keys: &MasterKeys,
    scope: &OwnerScope,
    name: &SecretName,
) -> Result<Option<SecretValue>> {
    let Some(sealed) = store.get_secret(scope, name).await? else {
        return Ok(None);
    };
    let key = owner_data_key(store, keys, scope)
        .await?
        .ok_or_else(|| Error::Integrity("a secret exists but its owner has no data key".into()))?;
    crypto::open_value(&key, scope.owner(), name, &sealed).map(Some)
}

/// What a master-key rewrap did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Data keys read.
    pub examined: u64,
    /// Data keys already under the current master key version (left alone).
    pub already_current: u64,
    /// Data keys rewrapped under the current version.
    pub rewrapped: u64,
    /// Data keys that changed (or went with their owner) between the read and the write:
    /// left as they were; run the rewrap again.
    pub changed_meanwhile: u64,
    /// Owners whose data key could not be unwrapped (a version this process does not
    /// hold, or damaged bytes): left as they were.
    pub failed: Vec<OwnerId>,
}

/// How many rewrapped keys go to the store per write.
pub const REWRAP_BATCH: usize = 500;

/// Rewraps every owner's data key under the current master key (`ownership secrets
/// rewrap`). Keys wrapped under any version `keys` holds are opened and wrapped again;
/// keys already under the current version are skipped; each replacement is written only
/// if the stored key is still the one read. Values are not touched: they stay sealed
/// under the same data keys. Safe to run while servers are serving, and to run again.
pub async fn rewrap_data_keys<S: SecretStore + ?Sized>(
    store: &S,
    scope: &SystemScope,
    keys: &MasterKeys,
    rng: &mut (dyn RandomSource + Send),
) -> Result<RewrapReport> {
    let all = store.all_data_keys(scope).await?;
    let current = keys.current().version();
    let mut report = RewrapReport {
        examined: all.len() as u64,
        ..RewrapReport::default()
    };
    let mut pending: Vec<(OwnerId, Sealed, Sealed)> = Vec::new();
    for (owner, wrapped) in all {
        if wrapped.key_version == current {
            report.already_current += 1;
            continue;
        }
        match crypto::rewrap_data_key(keys, &owner, &wrapped, rng) {
            Ok(new) => pending.push((owner, wrapped, new)),
            Err(_) => report.failed.push(owner),
        }
    }
    for batch in pending.chunks(REWRAP_BATCH) {
        let replaced = store.replace_data_keys(scope, batch).await?;
        report.rewrapped += replaced;
        report.changed_meanwhile += (batch.len() as u64).saturating_sub(replaced);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Identity, UserRole};

    /// Runs a future whose awaits all complete at once (the fake store below never waits).
    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    /// A secret store in memory whose first key installation loses a race to another
    /// writer: it answers Conflict and installs the other writer's key instead.
    #[derive(Default)]
    struct RacingSecrets {
        other_writers_key: std::sync::Mutex<Option<Sealed>>,
        key: std::sync::Mutex<Option<Sealed>>,
        values: std::sync::Mutex<Vec<(SecretName, Sealed)>>,
    }

    #[async_trait::async_trait]
    impl SecretStore for RacingSecrets {
        async fn data_key(&self, _: &OwnerScope) -> Result<Option<Sealed>> {
            Ok(self.key.lock().unwrap().clone())
        }
        async fn put_secret(
            &self,
            _: &OwnerScope,
            name: &SecretName,
            value: Sealed,
            new_data_key: Option<Sealed>,
        ) -> Result<SecretMeta> {
            let mut key = self.key.lock().unwrap();
            match (new_data_key, key.is_some()) {
                (Some(_), false) => {
                    *key = self.other_writers_key.lock().unwrap().take();
                    return Err(Error::Conflict("raced".into()));
                }
                (Some(_), true) | (None, false) => return Err(Error::Conflict("bad".into())),
                (None, true) => {}
            }
            self.values.lock().unwrap().push((name.clone(), value));
            Ok(SecretMeta {
                name: name.clone(),
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            })
        }
        async fn get_secret(&self, _: &OwnerScope, name: &SecretName) -> Result<Option<Sealed>> {
            Ok(self
                .values
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()))
        }
        async fn list_secrets(&self, _: &OwnerScope) -> Result<Vec<SecretMeta>> {
            Ok(Vec::new())
        }
        async fn delete_secret(&self, _: &OwnerScope, _: &SecretName) -> Result<()> {
            Ok(())
        }
        async fn all_data_keys(&self, _: &SystemScope) -> Result<Vec<(OwnerId, Sealed)>> {
            Ok(Vec::new())
        }
        async fn replace_data_keys(
            &self,
            _: &SystemScope,
            _: &[(OwnerId, Sealed, Sealed)],
        ) -> Result<u64> {
            Ok(0)
        }
    }

    #[test]
    fn a_lost_data_key_race_reseals_under_the_winners_key() {
        let mut n = 0_u8;
        let mut rng = move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                n = n.wrapping_add(13);
                *b = n;
            }
        };
        let keys = MasterKeys::single(crypto::MasterKey::new(1, [5; 32]).unwrap());
        let alice = OwnerId::parse("alice").unwrap();
        let scope = OwnerScope::own(&Identity::new(alice.clone(), UserRole::Member));
        let winners_key = crypto::DataKey::generate(&mut rng);
        let store = RacingSecrets::default();
        *store.other_writers_key.lock().unwrap() =
            Some(crypto::wrap_data_key(keys.current(), &alice, &winners_key, &mut rng).unwrap());
        let name = SecretName::parse("TOKEN").unwrap();
        block_on(put_secret(&store, &keys, &scope, &name, "v1", &mut rng)).unwrap();
        let value = block_on(secret_value(&store, &keys, &scope, &name))
            .unwrap()
            .unwrap();
        assert_eq!(value.expose(), "v1");
        let sealed = store.values.lock().unwrap()[0].1.clone();
        assert_eq!(
            crypto::open_value(&winners_key, &alice, &name, &sealed)
                .unwrap()
                .expose(),
            "v1"
        );
    }
}
