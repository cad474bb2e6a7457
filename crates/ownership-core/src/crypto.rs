//! Envelope encryption of per-owner secrets and webhook signing secrets (docs/secrets.md, docs/webhooks.md; key
//! management in `docs/secrets.md`).
//!
//! - The operator provides a **master key** ([`MasterKey`]): 32 bytes and a version
//!   number. It never touches a row; it only wraps other keys. [`MasterKeys`] holds the
//!   current one and, while a rotation runs, the previous one, so keys wrapped under
//!   either version open.
//! - Each owner has a random 32-byte **data key** ([`DataKey`]), stored only wrapped under
//!   the master key ([`wrap_data_key`]). Deleting the owner deletes the wrapped key, and
//!   with it every value it sealed (crypto-shredding). Rotating the master key rewraps
//!   the data keys ([`rewrap_data_key`]); the values are not touched.
//! - Each secret value is sealed under its owner's data key ([`seal_value`]).
//! - Webhook signing secrets are sealed directly under the master key
//!   ([`seal_webhook_secret`], through `WebhookSecret::seal`): an owner may set a webhook before holding any secret,
//!   and the store installs data keys only together with a secret.
//!
//! Everything is AES-256-GCM (ASVS 5.0 11.3.2, 11.3.3) with associated data that binds
//! each ciphertext to where it belongs, so a row copied to another owner, another name
//! or another purpose fails to open. The associated data is a fixed label followed by
//! length-prefixed fields (a `u32` big-endian byte count, then the bytes) and the key
//! version (`u32` big-endian):
//!
//! | what | label | fields |
//! |---|---|---|
//! | wrapped data key | `ownership/data-key/v1` | owner id, master key version |
//! | secret value | `ownership/secret/v1` | owner id, secret name, data key version |
//! | webhook signing secret | `ownership/webhook-secret/v1` | owner id, master key version |
//!
//! # Nonces (ASVS 5.0 11.3.4)
//!
//! Every encryption draws a fresh random 96-bit nonce from the caller's [`RandomSource`].
//! GCM breaks if a nonce repeats under one key, so the bound that matters is the number
//! of encryptions per key: with `n` random nonces the chance of any repeat is about
//! `n² / 2⁹⁷`. NIST SP 800-38D §8.3 caps random-nonce GCM at 2³² encryptions per key
//! (repeat probability under 2⁻³²). Here a data key seals one owner's secret writes
//! (a million writes: about 2⁻⁵⁷), and the master key seals one wrap per owner per
//! rotation plus one webhook secret per endpoint change (ten million owners: about
//! 2⁻⁵⁰). Both stay many orders of magnitude under the cap, so random nonces are safe at
//! this volume and need no counter that would have to survive restarts and processes.
//!
//! A ciphertext that does not open is [`Error::Integrity`] with a message that names
//! what failed, never a key or a value.

use std::fmt;

use aes_gcm::aead::{Aead as _, KeyInit as _, Nonce, Payload};
use aes_gcm::{Aes256Gcm, Key};
use zeroize::{Zeroize as _, Zeroizing};

use crate::RandomSource;
use crate::error::{Error, Result};
use crate::ids::{OwnerId, SecretName};

/// Associated-data label of wrapped data keys.
pub const DATA_KEY_LABEL: &[u8] = b"ownership/data-key/v1";

/// Associated-data label of secret values.
pub const SECRET_LABEL: &[u8] = b"ownership/secret/v1";

/// Associated-data label of webhook signing secrets.
pub const WEBHOOK_LABEL: &[u8] = b"ownership/webhook-secret/v1";

/// The version of a data key, recorded with every value it seals. Data keys are never
/// replaced while their owner exists (a master-key rotation rewraps them), so there is
/// one generation.
pub const DATA_KEY_VERSION: u32 = 1;

/// Bytes of every key here (AES-256).
pub const KEY_BYTES: usize = 32;

/// Longest secret value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

/// The operator's key-encryption key: 32 bytes and a version (1 or more). `Debug` shows
/// the version only; the bytes are wiped on drop.
#[derive(Clone)]
pub struct MasterKey {
    version: u32,
    key: [u8; KEY_BYTES],
}

impl MasterKey {
    /// A master key of `version` (which must be at least 1).
    pub fn new(version: u32, key: [u8; KEY_BYTES]) -> Result<Self> {
        if version == 0 {
            return Err(Error::invalid("master_key_version", "must be 1 or more"));
        }
        Ok(Self { version, key })
    }

    /// Its version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// A 32-byte key for another purpose, derived from this one with HKDF-SHA256
    /// (RFC 5869: empty salt, `info` naming the purpose). The derived key reveals nothing
    /// about the master key.
    pub fn derive(&self, info: &[u8]) -> Zeroizing<[u8; KEY_BYTES]> {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(&[]), &self.key);
        let mut okm = Zeroizing::new([0_u8; KEY_BYTES]);
        #[expect(
            clippy::expect_used,
            reason = "HKDF-SHA256 only fails for outputs over 255 × 32 bytes; this one is 32"
        )]
        hkdf.expand(info, okm.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        okm
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.key))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .field("key", &"****")
            .finish()
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// The master keys a server holds: the current one, which wraps and seals everything new,
/// and during a rotation the previous one, which still opens what it wrapped.
#[derive(Debug, Clone)]
pub struct MasterKeys {
    current: MasterKey,
    previous: Option<MasterKey>,
}

impl MasterKeys {
    /// The current key and, while a rotation runs, the previous one (its version must
    /// differ from the current one's).
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Result<Self> {
        if previous
            .as_ref()
            .is_some_and(|p| p.version == current.version)
        {
            return Err(Error::invalid(
                "previous_master_key_version",
                "must differ from the current master key's version",
            ));
        }
        Ok(Self { current, previous })
    }

    /// Only `current`.
    pub fn single(current: MasterKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// The key everything new is wrapped or sealed under.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// The previous key, during a rotation.
    pub fn previous(&self) -> Option<&MasterKey> {
        self.previous.as_ref()
    }

    /// The key of `version`, if this server holds it.
    pub fn get(&self, version: u32) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.version == version)
    }

    fn for_sealed(&self, sealed: &Sealed, what: &str) -> Result<&MasterKey> {
        self.get(sealed.key_version).ok_or_else(|| {
            Error::Integrity(format!(
                "{what} is wrapped under master key version {}, which this server does not hold",
                sealed.key_version
            ))
        })
    }
}

/// An owner's data key. `Debug` is redacted; the bytes are wiped on drop.
pub struct DataKey([u8; KEY_BYTES]);

impl DataKey {
    /// A new random data key from the caller's random source.
    pub fn generate(rng: &mut dyn RandomSource) -> Self {
        let mut key = [0_u8; KEY_BYTES];
        rng.fill(&mut key);
        Self(key)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.0))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(****)")
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A decrypted secret value. `Debug` is redacted, the text is wiped on drop, and the type
/// is not `Serialize`: it reaches a response only through [`SecretValue::expose`].
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// The value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(****)")
    }
}

/// Checks a secret value before it is sealed: at most [`MAX_VALUE_BYTES`] bytes.
pub fn check_value(value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!("must be at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Appends a `u32` big-endian length and the bytes.
fn push_field(aad: &mut Vec<u8>, field: &[u8]) {
    // Owner ids are at most 128 bytes and names 128: the length always fits.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    aad.extend_from_slice(&len.to_be_bytes());
    aad.extend_from_slice(field);
}

/// The associated data of an owner's wrapped data key.
pub fn data_key_aad(owner: &OwnerId, master_version: u32) -> Vec<u8> {
    let mut aad = DATA_KEY_LABEL.to_vec();
    push_field(&mut aad, owner.as_str().as_bytes());
    aad.extend_from_slice(&master_version.to_be_bytes());
    aad
}

/// The associated data of one secret value.
pub fn secret_aad(owner: &OwnerId, name: &SecretName, data_key_version: u32) -> Vec<u8> {
    let mut aad = SECRET_LABEL.to_vec();
    push_field(&mut aad, owner.as_str().as_bytes());
    push_field(&mut aad, name.as_str().as_bytes());
    aad.extend_from_slice(&data_key_version.to_be_bytes());
    aad
}

/// The associated data of an owner's webhook signing secret.
pub fn webhook_aad(owner: &OwnerId, master_version: u32) -> Vec<u8> {
    let mut aad = WEBHOOK_LABEL.to_vec();
    push_field(&mut aad, owner.as_str().as_bytes());
    aad.extend_from_slice(&master_version.to_be_bytes());
    aad
}

fn seal(
    cipher: &Aes256Gcm,
    key_version: u32,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut dyn RandomSource,
) -> Result<Sealed> {
    let mut nonce = [0_u8; 12];
    rng.fill(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            &Nonce::<Aes256Gcm>::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::Integrity("encryption failed".into()))?;
    Ok(Sealed {
        nonce,
        ciphertext,
        key_version,
    })
}

fn open(cipher: &Aes256Gcm, aad: &[u8], sealed: &Sealed, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    cipher
        .decrypt(
            &Nonce::<Aes256Gcm>::from(sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::Integrity(format!("{what} does not decrypt")))
}

/// Wraps `key` for `owner` under `master` (the current master key).
pub fn wrap_data_key(
    master: &MasterKey,
    owner: &OwnerId,
    key: &DataKey,
    rng: &mut dyn RandomSource,
) -> Result<Sealed> {
    let aad = data_key_aad(owner, master.version);
    seal(&master.cipher(), master.version, &aad, &key.0, rng)
}

/// Unwraps `owner`'s data key with whichever master key version it was wrapped under.
/// [`Error::Integrity`] when that version is not held, or when the wrapped key does not
/// open (wrong owner, tampered bytes).
pub fn unwrap_data_key(keys: &MasterKeys, owner: &OwnerId, wrapped: &Sealed) -> Result<DataKey> {
    let master = keys.for_sealed(wrapped, "the data key")?;
    let aad = data_key_aad(owner, wrapped.key_version);
    let plain = open(&master.cipher(), &aad, wrapped, "the data key")?;
    let bytes = <[u8; KEY_BYTES]>::try_from(plain.as_slice())
        .map_err(|_| Error::Integrity("the data key has the wrong length".into()))?;
    Ok(DataKey(bytes))
}

/// Opens `wrapped` with any held master key and wraps the same data key under the current
/// one. A key already under the current version is rewrapped too (with a new nonce); the
/// caller decides whether to skip those.
pub fn rewrap_data_key(
    keys: &MasterKeys,
    owner: &OwnerId,
    wrapped: &Sealed,
    rng: &mut dyn RandomSource,
) -> Result<Sealed> {
    let key = unwrap_data_key(keys, owner, wrapped)?;
    wrap_data_key(keys.current(), owner, &key, rng)
}

/// Seals one secret value of `owner` named `name` under the owner's data key.
pub fn seal_value(
    key: &DataKey,
    owner: &OwnerId,
    name: &SecretName,
    value: &str,
    rng: &mut dyn RandomSource,
) -> Result<Sealed> {
    check_value(value)?;
    let aad = secret_aad(owner, name, DATA_KEY_VERSION);
    seal(&key.cipher(), DATA_KEY_VERSION, &aad, value.as_bytes(), rng)
}

/// Opens one secret value. [`Error::Integrity`] when it does not open: sealed for another
/// owner or name, under another data key, or tampered with.
pub fn open_value(
    key: &DataKey,
    owner: &OwnerId,
    name: &SecretName,
    sealed: &Sealed,
) -> Result<SecretValue> {
    let aad = secret_aad(owner, name, sealed.key_version);
    let mut plain = open(&key.cipher(), &aad, sealed, "the secret value")?;
    let bytes = std::mem::take(&mut *plain);
    let text = String::from_utf8(bytes).map_err(|e| {
        let mut bytes = e.into_bytes();
        bytes.zeroize();
        Error::Integrity("the secret value is not UTF-8".into())
    })?;
    Ok(SecretValue(Zeroizing::new(text)))
}

/// Seals `owner`'s webhook signing secret (its text, `plain`) under `master` (the current
/// master key). [`crate::webhook::WebhookSecret::seal`] is the typed entry point.
pub fn seal_webhook_secret(
    master: &MasterKey,
    owner: &OwnerId,
    plain: &[u8],
    rng: &mut dyn RandomSource,
) -> Result<Sealed> {
    let aad = webhook_aad(owner, master.version);
    seal(&master.cipher(), master.version, &aad, plain, rng)
}

/// Opens `owner`'s webhook signing secret with the master key version it was sealed
/// under, as text. [`Error::Integrity`] when that version is not held, the secret does not
/// open or is not UTF-8. [`crate::webhook::WebhookSecret::open`] is the typed entry point.
pub fn open_webhook_secret(
    keys: &MasterKeys,
    owner: &OwnerId,
    sealed: &Sealed,
) -> Result<Zeroizing<String>> {
    let master = keys.for_sealed(sealed, "the webhook signing secret")?;
    let aad = webhook_aad(owner, sealed.key_version);
    let plain = open(&master.cipher(), &aad, sealed, "the webhook signing secret")?;
    let text = std::str::from_utf8(&plain)
        .map_err(|_| Error::Integrity("the webhook signing secret is not UTF-8".into()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// An AES-256-GCM ciphertext with what is needed to open it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The 96-bit nonce.
    pub nonce: [u8; 12],
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// The version of the key it was sealed under (master key version for data keys; the
    /// data key generation for values).
    pub key_version: u32,
}

/// Bytes AES-256-GCM adds to what it seals (its tag).
pub const TAG_BYTES: usize = 16;

impl Sealed {
    /// How many bytes were sealed: the ciphertext without its tag.
    pub fn sealed_len(&self) -> u64 {
        self.ciphertext.len().saturating_sub(TAG_BYTES) as u64
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_version", &self.key_version)
            .field("len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::webhook::WebhookSecret;

    /// A deterministic random source for tests.
    fn counter(seed: u8) -> impl FnMut(&mut [u8]) {
        let mut next = seed;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = next;
                next = next.wrapping_mul(31).wrapping_add(7);
            }
        }
    }

    fn owner(s: &str) -> OwnerId {
        OwnerId::parse(s).unwrap()
    }

    fn name(s: &str) -> SecretName {
        SecretName::parse(s).unwrap()
    }

    fn master(version: u32, byte: u8) -> MasterKey {
        MasterKey::new(version, [byte; 32]).unwrap()
    }

    #[test]
    fn the_cipher_is_aes_256_gcm_as_nist_specifies() {
        // NIST CAVP gcmEncryptExtIV256.rsp, a case with plaintext and associated data:
        // checks that nonce, associated data and tag are wired as GCM defines them.
        let key = hex::decode("92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b")
            .unwrap();
        let nonce = hex::decode("ac93a1a6145299bde902f21a").unwrap();
        let plaintext = hex::decode("2d71bcfa914e4ac045b2aa60955fad24").unwrap();
        let aad = hex::decode("1e0889016f67601c8ebea4943bc23ad6").unwrap();
        let master = MasterKey::new(1, key.try_into().unwrap()).unwrap();
        let mut nonce_source = |buf: &mut [u8]| buf.copy_from_slice(&nonce);
        let sealed = seal(&master.cipher(), 1, &aad, &plaintext, &mut nonce_source).unwrap();
        assert_eq!(
            hex::encode(&sealed.ciphertext),
            "8995ae2e6df3dbf96fac7b7137bae67feca5aa77d51d4a0a14d9c51e1da474ab"
        );
        assert_eq!(
            open(&master.cipher(), &aad, &sealed, "vector")
                .unwrap()
                .as_slice(),
            plaintext.as_slice()
        );
    }

    #[test]
    fn values_round_trip_under_their_owner_and_name() {
        let mut rng = counter(1);
        let keys = MasterKeys::single(master(1, 9));
        let alice = owner("alice");
        let dk = DataKey::generate(&mut rng);
        let wrapped = wrap_data_key(keys.current(), &alice, &dk, &mut rng).unwrap();
        assert_eq!(wrapped.key_version, 1);
        let dk = unwrap_data_key(&keys, &alice, &wrapped).unwrap();
        let sealed = seal_value(&dk, &alice, &name("API_KEY"), "s3cr3t", &mut rng).unwrap();
        assert_eq!(sealed.key_version, DATA_KEY_VERSION);
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"s3cr3t"));
        let value = open_value(&dk, &alice, &name("API_KEY"), &sealed).unwrap();
        assert_eq!(value.expose(), "s3cr3t");
        assert_eq!(format!("{value:?}"), "SecretValue(****)");
    }

    #[test]
    fn a_value_moved_to_another_owner_or_name_does_not_open() {
        let mut rng = counter(2);
        let (alice, bob) = (owner("alice"), owner("bob"));
        let dk = DataKey::generate(&mut rng);
        let sealed = seal_value(&dk, &alice, &name("API_KEY"), "v", &mut rng).unwrap();
        // Even under the very same data key, the associated data refuses the move.
        assert!(matches!(
            open_value(&dk, &bob, &name("API_KEY"), &sealed),
            Err(Error::Integrity(_))
        ));
        assert!(matches!(
            open_value(&dk, &alice, &name("OTHER"), &sealed),
            Err(Error::Integrity(_))
        ));
        let mut other_version = sealed.clone();
        other_version.key_version = 2;
        assert!(open_value(&dk, &alice, &name("API_KEY"), &other_version).is_err());
        let other_key = DataKey::generate(&mut rng);
        assert!(open_value(&other_key, &alice, &name("API_KEY"), &sealed).is_err());
    }

    #[test]
    fn length_prefixes_keep_owner_and_name_apart() {
        // "ab" + "c" and "a" + "bc" must not share associated data.
        assert_ne!(
            secret_aad(&owner("ab"), &name("c"), 1),
            secret_aad(&owner("a"), &name("bc"), 1)
        );
    }

    #[test]
    fn a_wrapped_key_moved_to_another_owner_does_not_unwrap() {
        let mut rng = counter(3);
        let keys = MasterKeys::single(master(1, 9));
        let dk = DataKey::generate(&mut rng);
        let wrapped = wrap_data_key(keys.current(), &owner("alice"), &dk, &mut rng).unwrap();
        assert!(matches!(
            unwrap_data_key(&keys, &owner("bob"), &wrapped),
            Err(Error::Integrity(_))
        ));
        let mut tampered = wrapped.clone();
        if let Some(b) = tampered.ciphertext.first_mut() {
            *b ^= 1;
        }
        assert!(unwrap_data_key(&keys, &owner("alice"), &tampered).is_err());
        // A version this server does not hold is named in the error.
        let mut unknown = wrapped;
        unknown.key_version = 7;
        match unwrap_data_key(&keys, &owner("alice"), &unknown) {
            Err(Error::Integrity(m)) => assert!(m.contains("version 7")),
            other => panic!("expected integrity, got {other:?}"),
        }
    }

    #[test]
    fn rotation_opens_both_versions_and_rewraps_under_the_current() {
        let mut rng = counter(4);
        let alice = owner("alice");
        let old = MasterKeys::single(master(1, 1));
        let dk = DataKey::generate(&mut rng);
        let sealed = seal_value(&dk, &alice, &name("K"), "value", &mut rng).unwrap();
        let wrapped_v1 = wrap_data_key(old.current(), &alice, &dk, &mut rng).unwrap();

        let both = MasterKeys::new(master(2, 2), Some(master(1, 1))).unwrap();
        let v1_key = unwrap_data_key(&both, &alice, &wrapped_v1).unwrap();
        assert_eq!(
            open_value(&v1_key, &alice, &name("K"), &sealed)
                .unwrap()
                .expose(),
            "value"
        );
        let wrapped_v2 = rewrap_data_key(&both, &alice, &wrapped_v1, &mut rng).unwrap();
        assert_eq!(wrapped_v2.key_version, 2);

        // Once the previous key is gone, only the rewrapped form opens.
        let new_only = MasterKeys::single(master(2, 2));
        assert!(unwrap_data_key(&new_only, &alice, &wrapped_v1).is_err());
        let v2_key = unwrap_data_key(&new_only, &alice, &wrapped_v2).unwrap();
        assert_eq!(
            open_value(&v2_key, &alice, &name("K"), &sealed)
                .unwrap()
                .expose(),
            "value"
        );
        // A wrapped key relabelled with another version does not open either.
        let mut relabelled = wrapped_v1;
        relabelled.key_version = 2;
        assert!(unwrap_data_key(&both, &alice, &relabelled).is_err());
    }

    #[test]
    fn webhook_secrets_are_bound_to_their_owner_and_purpose() {
        let mut rng = counter(5);
        let keys = MasterKeys::single(master(3, 8));
        let secret = WebhookSecret::generate(&mut rng);
        let alice = owner("alice");
        let sealed = secret.seal(keys.current(), &alice, &mut rng).unwrap();
        assert_eq!(sealed.key_version, 3);
        assert_eq!(WebhookSecret::open(&keys, &alice, &sealed).unwrap(), secret);
        assert!(open_webhook_secret(&keys, &owner("bob"), &sealed).is_err());
        // A webhook secret is not a data key, and a data key is not a webhook secret.
        assert!(unwrap_data_key(&keys, &alice, &sealed).is_err());
        let dk = DataKey::generate(&mut rng);
        let wrapped = wrap_data_key(keys.current(), &alice, &dk, &mut rng).unwrap();
        assert!(open_webhook_secret(&keys, &alice, &wrapped).is_err());
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let key = master(1, 0xAB);
        let shown = format!("{key:?} {:?}", MasterKeys::single(key.clone()));
        assert!(shown.contains("version: 1"));
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
        assert_eq!(format!("{:?}", DataKey([7; 32])), "DataKey(****)");
    }

    #[test]
    fn key_versions_are_checked() {
        assert!(MasterKey::new(0, [0; 32]).is_err());
        assert!(MasterKeys::new(master(2, 1), Some(master(2, 2))).is_err());
        let keys = MasterKeys::new(master(2, 1), Some(master(1, 2))).unwrap();
        assert_eq!(keys.get(1).map(MasterKey::version), Some(1));
        assert_eq!(keys.get(2).map(MasterKey::version), Some(2));
        assert!(keys.get(3).is_none());
    }

    #[test]
    fn values_are_bounded() {
        let mut rng = counter(6);
        let dk = DataKey::generate(&mut rng);
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(seal_value(&dk, &owner("a"), &name("n"), &big, &mut rng).is_err());
        let max = "x".repeat(MAX_VALUE_BYTES);
        assert!(seal_value(&dk, &owner("a"), &name("n"), &max, &mut rng).is_ok());
    }

    proptest! {
        #[test]
        fn any_value_round_trips_and_any_flipped_bit_fails(
            value in ".{0,200}",
            seed in any::<u8>(),
            flip in any::<prop::sample::Index>(),
            bit in 0_u8..8,
        ) {
            let mut rng = counter(seed);
            let alice = owner("alice");
            let dk = DataKey::generate(&mut rng);
            let sealed = seal_value(&dk, &alice, &name("N"), &value, &mut rng).unwrap();
            let opened = open_value(&dk, &alice, &name("N"), &sealed).unwrap();
            prop_assert_eq!(opened.expose(), value.as_str());
            let mut tampered = sealed.clone();
            let i = flip.index(tampered.ciphertext.len());
            tampered.ciphertext[i] ^= 1 << bit;
            prop_assert!(open_value(&dk, &alice, &name("N"), &tampered).is_err());
            let mut renonced = sealed;
            renonced.nonce[usize::from(bit) % 12] ^= 1;
            prop_assert!(open_value(&dk, &alice, &name("N"), &renonced).is_err());
        }
    }
}
