//! The Standard Webhooks verifier (`webhook::standard_verify`) and signing-secret parsing.
//!
//! Input: `<msg_id>\n<webhook-timestamp>\n<webhook-signature>\n<body…>` (missing lines
//! are empty). Properties checked on every input:
//!
//! - `standard_verify` never panics, and its answer matches a model of the documented
//!   rules: `Malformed` unless the timestamp is a canonical `i64`, the id is non-empty
//!   and the header has a `<version>,<signature>` entry; then `Timestamp` outside the
//!   tolerance; then `Ok` exactly when a `v1` entry is the base64 of the HMAC under one
//!   of the secrets (base64 decoding is canonical, so the text must match exactly);
//! - signing round-trips: what `standard_sign` and `sign_headers` produce for the
//!   input's id, timestamp and body verifies under each secret, and fails with
//!   `Signature` for a changed body or an unrelated secret;
//! - `WebhookSecret::parse` never panics; what it accepts keeps its text and a 24–64 byte key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ownership_core::webhook::{
    SECRET_MAX_BYTES, SECRET_MIN_BYTES, WebhookError, WebhookSecret, sign_headers, standard_sign,
    standard_verify,
};

/// The Standard Webhooks published test secret, and a second one for rotations.
const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET_OTHER: &str = "whsec_//////////////////////////////////////////8=";
/// The receiver's clock: the published vector's timestamp.
const NOW: i64 = 1_614_265_330;
const TOLERANCE: i64 = 300;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let msg_id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let timestamp = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let signature = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let a = WebhookSecret::parse(SECRET_A).expect("secret A parses");
    let b = WebhookSecret::parse(SECRET_B).expect("secret B parses");
    let other = WebhookSecret::parse(SECRET_OTHER).expect("the other secret parses");

    check_verify(&[&a, &b], &msg_id, &timestamp, &signature, body);
    check_round_trip(&a, &b, &other, &msg_id, &timestamp, body);
    check_secret_parse(&msg_id);
    check_secret_parse(&signature);
});

fn canonical_i64(text: &str) -> Option<i64> {
    let value: i64 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

fn check_verify(secrets: &[&WebhookSecret], msg_id: &str, ts: &str, header: &str, body: &[u8]) {
    let got = standard_verify(secrets, msg_id, ts, header, body, NOW, TOLERANCE);
    let entries: Vec<(&str, &str)> = header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .collect();
    let expected = match canonical_i64(ts) {
        None => Err(WebhookError::Malformed),
        Some(_) if msg_id.is_empty() || entries.is_empty() => Err(WebhookError::Malformed),
        Some(t) if NOW.abs_diff(t) > TOLERANCE.unsigned_abs() => Err(WebhookError::Timestamp),
        Some(t) => {
            let matched = secrets.iter().any(|secret| {
                let signed = standard_sign(secret, msg_id, t, body);
                let encoded = signed.strip_prefix("v1,").unwrap_or_default();
                entries.iter().any(|&(v, s)| v == "v1" && s == encoded)
            });
            if matched {
                Ok(())
            } else {
                Err(WebhookError::Signature)
            }
        }
    };
    assert_eq!(got, expected, "standard_verify disagrees with the model");
}

fn check_round_trip(
    a: &WebhookSecret,
    b: &WebhookSecret,
    other: &WebhookSecret,
    msg_id: &str,
    ts: &str,
    body: &[u8],
) {
    if msg_id.is_empty() {
        return;
    }
    let t = canonical_i64(ts).unwrap_or(NOW);
    let t_text = t.to_string();
    let one = standard_sign(a, msg_id, t, body);
    assert_eq!(
        standard_verify(&[a], msg_id, &t_text, &one, body, t, 0),
        Ok(())
    );
    assert_eq!(
        standard_verify(&[other], msg_id, &t_text, &one, body, t, 0),
        Err(WebhookError::Signature)
    );
    let mut changed = body.to_vec();
    changed.push(b'!');
    assert_eq!(
        standard_verify(&[a], msg_id, &t_text, &one, &changed, t, 0),
        Err(WebhookError::Signature)
    );
    let headers = sign_headers(&[a, b], msg_id, t, body);
    assert_eq!(headers.webhook_id, msg_id);
    assert_eq!(headers.webhook_timestamp, t_text);
    for secret in [a, b] {
        assert_eq!(
            standard_verify(
                &[secret],
                msg_id,
                &t_text,
                &headers.webhook_signature,
                body,
                t,
                0
            ),
            Ok(())
        );
    }
    assert_eq!(
        standard_verify(
            &[other],
            msg_id,
            &t_text,
            &headers.webhook_signature,
            body,
            t,
            0
        ),
        Err(WebhookError::Signature)
    );
}

fn check_secret_parse(raw: &str) {
    if let Ok(secret) = WebhookSecret::parse(raw) {
        assert_eq!(secret.expose(), raw);
        assert!(raw.starts_with("whsec_"));
        assert!((SECRET_MIN_BYTES..=SECRET_MAX_BYTES).contains(&secret.key_bytes().len()));
        assert!(WebhookSecret::parse(secret.expose()).is_ok_and(|again| again == secret));
    }
}
