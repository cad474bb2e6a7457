//! The Stripe-style `Ownership-Signature: t=<unix>,v1=<hex>` verifier
//! (`webhook::stripe_verify`).
//!
//! Input: `<header>\n<body…>`. Properties checked on every input:
//!
//! - `stripe_verify` never panics, and its answer matches a model of the documented
//!   rules: `Malformed` when an item has no `=`, or `t` is missing, repeated or not a
//!   canonical `i64`; then `Timestamp` outside the tolerance; then `Ok` exactly when a
//!   `v1` value is the hex HMAC under one of the secrets (hex is case-insensitive);
//! - signing round-trips: `stripe_sign` and `sign_headers` output for the input's
//!   timestamp and body verifies under each secret, and fails with `Signature` for a
//!   changed body or an unrelated secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ownership_core::webhook::{
    WebhookError, WebhookSecret, sign_headers, stripe_sign, stripe_verify,
};

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET_OTHER: &str = "whsec_//////////////////////////////////////////8=";
const NOW: i64 = 1_614_265_330;
const TOLERANCE: i64 = 300;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header).into_owned();
    let a = WebhookSecret::parse(SECRET_A).expect("secret A parses");
    let b = WebhookSecret::parse(SECRET_B).expect("secret B parses");
    let other = WebhookSecret::parse(SECRET_OTHER).expect("the other secret parses");
    check_verify(&[&a, &b], &header, body);
    check_round_trip(&a, &b, &other, &header, body);
});

fn canonical_i64(text: &str) -> Option<i64> {
    let value: i64 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

/// The `t=` value of the header, if it has exactly one and every item has a `=`.
fn model(secrets: &[&WebhookSecret], header: &str, body: &[u8]) -> Result<(), WebhookError> {
    let mut items = Vec::new();
    for item in header.split(',') {
        items.push(item.trim().split_once('=').ok_or(WebhookError::Malformed)?);
        let times = items.iter().filter(|(key, _)| *key == "t").count();
        if times > 1 {
            return Err(WebhookError::Malformed);
        }
    }
    let (_, t_text) = items
        .iter()
        .find(|(key, _)| *key == "t")
        .ok_or(WebhookError::Malformed)?;
    let t = canonical_i64(t_text).ok_or(WebhookError::Malformed)?;
    if NOW.abs_diff(t) > TOLERANCE.unsigned_abs() {
        return Err(WebhookError::Timestamp);
    }
    let matched = secrets.iter().any(|secret| {
        let signed = stripe_sign(secret, t, body);
        let expected_hex = signed
            .split_once(",v1=")
            .map(|(_, hex)| hex)
            .unwrap_or_default();
        items
            .iter()
            .any(|(key, value)| *key == "v1" && value.to_ascii_lowercase() == expected_hex)
    });
    if matched {
        Ok(())
    } else {
        Err(WebhookError::Signature)
    }
}

fn check_verify(secrets: &[&WebhookSecret], header: &str, body: &[u8]) {
    let got = stripe_verify(secrets, header, body, NOW, TOLERANCE);
    assert_eq!(
        got,
        model(secrets, header, body),
        "stripe_verify disagrees with the model"
    );
}

fn check_round_trip(
    a: &WebhookSecret,
    b: &WebhookSecret,
    other: &WebhookSecret,
    header: &str,
    body: &[u8],
) {
    // The timestamp to sign with: the header's `t=`, when it holds a canonical i64.
    let t = header
        .split(',')
        .find_map(|item| item.trim().strip_prefix("t="))
        .and_then(canonical_i64)
        .unwrap_or(NOW);
    let one = stripe_sign(a, t, body);
    assert_eq!(stripe_verify(&[a], &one, body, t, 0), Ok(()));
    assert_eq!(stripe_verify(&[b, a], &one, body, t, 0), Ok(()));
    assert_eq!(
        stripe_verify(&[other], &one, body, t, 0),
        Err(WebhookError::Signature)
    );
    let mut changed = body.to_vec();
    changed.push(b'!');
    assert_eq!(
        stripe_verify(&[a], &one, &changed, t, 0),
        Err(WebhookError::Signature)
    );
    assert_eq!(
        stripe_verify(&[a], &one, body, t.saturating_add(301), 300),
        if t.checked_add(301).is_some() {
            Err(WebhookError::Timestamp)
        } else {
            Ok(())
        }
    );
    let headers = sign_headers(&[a, b], "msg_fuzz", t, body);
    for secret in [a, b] {
        assert_eq!(
            stripe_verify(&[secret], &headers.ownership_signature, body, t, 0),
            Ok(())
        );
    }
    assert_eq!(
        stripe_verify(&[other], &headers.ownership_signature, body, t, 0),
        Err(WebhookError::Signature)
    );
}
