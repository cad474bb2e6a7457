//! Use cases: the small orchestration every adapter needs around a port call — generate a
//! token and keep only its digest, derive and hash a pairing code, check the rule that
//! yields the proof, seal and open secrets ([`crate::crypto`]), turn audit events into
//! webhook deliveries — written once so the HTTP service, the console and the CLI take
//! the same path. Pure: randomness and time come in as parameters; the only effects are
//! the port calls.
//!
//! Each use case lives in its area's module; this module re-exports them under their
//! former paths.

pub use crate::pairing::{
    PAIRING_CANDIDATES, approve_pairing, pairing_candidates, redeem_pairing, request_pairing,
};
pub use crate::provision::provision;
pub use crate::resources::{
    EXTERNAL_REF_MAX_BYTES, ResourceRequest, create_resource, resource_credentials,
};
pub use crate::secrets::{REWRAP_BATCH, RewrapReport, put_secret, rewrap_data_keys, secret_value};
pub use crate::tokens::{
    MAX_ROTATION_GRACE, Refusal, TokenRequest, authenticate, check_token, fresh_token,
    issue_service_token, issue_token, issue_with, rotate_token,
};
pub use crate::users::{bootstrap_owner, create_user};
pub use crate::webhook::{
    RetryPolicy, delivery_event_seq, event_delivery_id, event_is_for, event_payload,
    rotate_webhook_secret, set_webhook, signing_secrets, stale_webhook_secrets,
};
