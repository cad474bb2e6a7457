//! GitHub's secret-scanning partner protocol: the reports GitHub sends when it finds one
//! of our tokens in public code, signed with ECDSA P-256 over SHA-256. The public keys are
//! configured (`secret_scanning.github_public_keys`); a report is believed only when its
//! signature verifies under the key its `Github-Public-Key-Identifier` names.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

/// The DER header of a P-256 `SubjectPublicKeyInfo` (id-ecPublicKey, prime256v1, and the
/// BIT STRING that holds the 65-byte uncompressed point).
const SPKI_P256_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// GitHub's public keys, by identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubKeys {
    keys: BTreeMap<String, Vec<u8>>,
}

impl GitHubKeys {
    /// Reads `id → PEM` (a `-----BEGIN PUBLIC KEY-----` P-256 key, as GitHub publishes
    /// them). An error names the key identifier, never more.
    pub fn from_pem<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut keys = BTreeMap::new();
        for (id, pem) in entries {
            let point = point_of_pem(pem).ok_or_else(|| {
                format!(
                    "GitHub key `{id}` is not a PEM P-256 public key (-----BEGIN PUBLIC KEY-----)"
                )
            })?;
            keys.insert(id.to_owned(), point);
        }
        Ok(Self { keys })
    }

    /// Whether any key is configured (the endpoint is served only then).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) over `body` verifies
    /// under the key named `key_id`. An unknown key, bad base64 and a wrong signature are
    /// all `false`.
    pub fn verify(&self, key_id: &str, signature: &str, body: &[u8]) -> bool {
        let Some(point) = self.keys.get(key_id) else {
            return false;
        };
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(body, &signature)
            .is_ok()
    }
}

/// The uncompressed point of a PEM P-256 `SubjectPublicKeyInfo`.
fn point_of_pem(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD.decode(body).ok()?;
    let point = der.strip_prefix(SPKI_P256_HEADER.as_slice())?;
    (point.len() == 65 && point.first() == Some(&0x04)).then(|| point.to_vec())
}

/// The PEM of a P-256 public key given as its uncompressed point (what tests and
/// operators holding a raw key need to configure it).
pub fn pem_of_point(point: &[u8]) -> String {
    let mut der = SPKI_P256_HEADER.to_vec();
    der.extend_from_slice(point);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    #[test]
    fn signatures_verify_only_under_the_named_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let pem = pem_of_point(pair.public_key().as_ref());
        let keys = GitHubKeys::from_pem([("k1", pem.as_str())]).unwrap();
        let body = br#"[{"token":"x","type":"t","url":"u","source":"content"}]"#;
        let sig = STANDARD.encode(pair.sign(&rng, body).unwrap().as_ref());
        assert!(keys.verify("k1", &sig, body));
        assert!(!keys.verify("k2", &sig, body), "unknown key");
        assert!(!keys.verify("k1", &sig, b"[]"), "other body");
        assert!(!keys.verify("k1", "not base64!", body));
        assert!(
            GitHubKeys::from_pem([(
                "bad",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
            )])
            .is_err()
        );
    }
}
