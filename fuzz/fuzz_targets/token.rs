//! Bearer token classification (`ownership_core::token::classify`) and the digest's hex
//! form. Properties checked on every input:
//!
//! - `classify` never panics; `Ours` only for exactly 55 characters with a known family
//!   prefix, `Foreign` only for 1–512 visible-ASCII bytes without the `own_` prefix;
//! - the classified secret keeps the input byte for byte, and its digest is the digest
//!   of the input; a display prefix never shows more than 10 characters of our token or
//!   4 of a foreign one;
//! - a token generated from the input's bytes classifies as `Ours` of its family, and
//!   changing any one of its characters makes it not `Ours` (CRC32 catches every
//!   single-character substitution);
//! - `TokenDigest::from_hex` accepts exactly 64 hex characters and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ownership_core::token::{
    FOREIGN_DISPLAY_CHARS, FOREIGN_TOKEN_MAX_BYTES, PRODUCT_PREFIX, PresentedToken, TOKEN_LEN,
    TokenDigest, TokenFamily, TokenSecret, classify, digest_of,
};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    check_classify(&raw);
    check_hex(&raw);
    check_generated(data);
});

fn check_classify(raw: &str) {
    match classify(raw) {
        Ok(PresentedToken::Ours(secret, family)) => {
            assert_eq!(raw.len(), TOKEN_LEN);
            assert!(raw.starts_with(family.prefix()));
            assert!(raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            assert_eq!(secret.expose(), raw);
            assert_eq!(secret.family(), Some(family));
            let shown = secret.display_prefix();
            assert_eq!(shown.len(), 10);
            assert!(raw.starts_with(&shown));
            assert_eq!(secret.digest(), digest_of(raw));
        }
        Ok(PresentedToken::Foreign(secret)) => {
            assert!(!raw.starts_with(PRODUCT_PREFIX));
            assert!(!raw.is_empty() && raw.len() <= FOREIGN_TOKEN_MAX_BYTES);
            assert!(raw.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            assert_eq!(secret.expose(), raw);
            assert_eq!(secret.family(), None);
            let shown = secret.display_prefix();
            assert!(shown.ends_with('…'));
            let revealed = shown.trim_end_matches('…');
            assert!(revealed.len() <= FOREIGN_DISPLAY_CHARS);
            assert!(raw.starts_with(revealed));
            assert_eq!(secret.digest(), digest_of(raw));
        }
        Err(_) => {
            let foreign_shape = !raw.is_empty()
                && raw.len() <= FOREIGN_TOKEN_MAX_BYTES
                && raw.bytes().all(|b| (0x21..=0x7e).contains(&b));
            assert!(
                raw.starts_with(PRODUCT_PREFIX) || !foreign_shape,
                "a visible-ASCII token without our prefix must be accepted as foreign"
            );
        }
    }
}

fn check_hex(raw: &str) {
    if let Ok(digest) = TokenDigest::from_hex(raw) {
        assert_eq!(raw.len(), 64);
        assert_eq!(digest.to_hex(), raw.to_ascii_lowercase());
        assert_eq!(TokenDigest::from_hex(&digest.to_hex()).ok(), Some(digest));
        assert_eq!(TokenDigest::from_bytes(*digest.as_bytes()), digest);
    } else {
        assert!(raw.len() != 64 || !raw.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

fn check_generated(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let family = TokenFamily::ALL[usize::from(selector) % TokenFamily::ALL.len()];
    let mut random = [0_u8; 32];
    for (slot, byte) in random.iter_mut().zip(rest.iter()) {
        *slot = *byte;
    }
    let token = TokenSecret::generate(family, &mut |buf: &mut [u8]| {
        for (slot, byte) in buf.iter_mut().zip(random.iter().cycle()) {
            *slot = *byte;
        }
    });
    let text = token.expose().to_owned();
    assert_eq!(text.len(), TOKEN_LEN);
    match classify(&text) {
        Ok(PresentedToken::Ours(secret, got)) => {
            assert_eq!(got, family);
            assert_eq!(secret, token);
        }
        other => panic!("a generated token must classify as ours, got {other:?}"),
    }
    // One substituted character, chosen by the input, must never still be ours.
    let position = usize::from(rest.get(32).copied().unwrap_or(0)) % TOKEN_LEN;
    let replacement = rest.get(33).copied().unwrap_or(b'x');
    let mut bytes = text.into_bytes();
    if bytes[position] != replacement && replacement.is_ascii() {
        bytes[position] = replacement;
        let mutated = String::from_utf8(bytes).expect("ASCII stays UTF-8");
        assert!(
            !matches!(classify(&mutated), Ok(PresentedToken::Ours(..))),
            "a token with one changed character still classified as ours"
        );
    }
}
