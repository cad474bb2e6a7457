//! Leaked tokens, revoked by value: holding a token is the proof, so anyone who finds one
//! (a user who pasted it somewhere, a scanner) can end it without knowing whose it is.

use axum::extract::State;
use axum::http::StatusCode;
use ownership_core::authz::SystemScope;
use ownership_core::leaks::{LEAK_REPORT_MAX, LeakSource};
use ownership_core::token::digest_of;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_doc::*;
use crate::auth::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::ApiJson;

/// Token values found somewhere they should not be.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakReport {
    /// Up to 1,000 raw token values, ours or not; anything that is not a live token is
    /// ignored. More is `400`; a body over the body limit is `413` first, so the limit is
    /// stated here rather than as `maxItems`, which a client could not satisfy alone.
    #[schema(example = json!(["own_u_0123456789abcdefghijklmnopqrstuv_abc123"]))]
    pub tokens: Vec<String>,
}

/// The receipt: how many values arrived, never which of them matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeakReceipt {
    /// How many values the report carried.
    #[schema(example = 1)]
    pub received: usize,
}

/// Revoke leaked tokens by value.
///
/// Unauthenticated: holding a token is the proof. Every live token and resource credential
/// among the values is revoked at once, audited as `token.revoked_as_leaked` or
/// `resource.revoked_as_leaked`, and its owner is told through
/// their event stream and webhook. The answer is the same whatever matched: 202 with the
/// count received. Rate-limited per client address (`limits.leak_reports_per_address`).
#[utoipa::path(post, path = "/v1/tokens/revoke-leaked", tag = "tokens", request_body = LeakReport,
    security(()),
    responses(
        (status = 202, description = "Received; every live token among them is revoked.", body = LeakReceipt),
        JsonBodyErrors,
        (status = 429, response = RateLimited), (status = 500, response = Internal),
        (status = 503, response = Unavailable)))]
pub async fn revoke_leaked(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    ApiJson(body): ApiJson<LeakReport>,
) -> Result<(StatusCode, ApiJson<LeakReceipt>), ApiError> {
    if let Some(ip) = ip {
        state
            .auth
            .limits()
            .leak_report(ip)
            .map_err(ApiError::rate_limited)?;
    }
    if body.tokens.len() > LEAK_REPORT_MAX {
        return Err(ownership_core::Error::invalid(
            "tokens",
            format!("at most {LEAK_REPORT_MAX} values per report"),
        )
        .into());
    }
    // Every value is hashed and looked up alike, ours or not: the work does not depend
    // on what the values are.
    let digests: Vec<_> = body.tokens.iter().map(|t| digest_of(t)).collect();
    state
        .store
        .revoke_leaked(&SystemScope::background(), &digests, LeakSource::Report)
        .await?;
    tracing::info!(client = ?ip, received = body.tokens.len(), "leaked-token report");
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(LeakReceipt {
            received: body.tokens.len(),
        }),
    ))
}

/// One match GitHub's secret scanning found.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GitHubMatch {
    /// The raw value found.
    #[schema(example = "own_u_0123456789abcdefghijklmnopqrstuv_abc123")]
    pub token: String,
    /// The secret type GitHub matched it as.
    #[serde(rename = "type")]
    #[schema(example = "ownership_user_token")]
    pub token_type: String,
    /// Where it was found.
    #[serde(default)]
    #[schema(example = "https://github.com/octo/repo/blob/main/.env")]
    pub url: Option<String>,
    /// What kind of place (`content`, `commit`, …).
    #[serde(default)]
    #[schema(example = "content")]
    pub source: Option<String>,
}

/// GitHub's feedback format: one label per match, by the value's SHA-256.
#[derive(Debug, Serialize, ToSchema)]
pub struct GitHubLabel {
    /// SHA-256 of the value, in hex.
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub token_hash: String,
    /// The type GitHub sent.
    #[schema(example = "ownership_user_token")]
    pub token_type: String,
    /// `true_positive` when the value is one of our tokens (now revoked, or already ended),
    /// `false_positive` otherwise.
    #[schema(example = "true_positive")]
    pub label: &'static str,
}

/// Receive GitHub secret-scanning reports.
///
/// GitHub's secret-scanning partner endpoint. The body is verified against
/// `Github-Public-Key-Signature` (ECDSA P-256, SHA-256, base64 DER) under the configured
/// key named by `Github-Public-Key-Identifier`; an unknown key or a wrong signature is
/// 401. Every live token among the matches is revoked (`token.revoked_as_leaked`, source
/// `github`) and labelled for GitHub's feedback. 404 when no GitHub key is configured.
#[utoipa::path(post, path = "/v1/secret-scanning/github", tag = "tokens",
    request_body = Vec<GitHubMatch>,
    security(()),
    responses(
        (status = 200, description = "One label per match.", body = Vec<GitHubLabel>),
        (status = 400, response = BadRequest), (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound), (status = 413, response = PayloadTooLarge),
        (status = 500, response = Internal), (status = 503, response = Unavailable)))]
pub async fn github_report(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<ApiJson<Vec<GitHubLabel>>, ApiError> {
    let keys = &state.config.github_keys;
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = match (
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
    ) {
        (Some(id), Some(sig)) => keys.verify(id, sig, &body),
        _ => false,
    };
    if !verified {
        tracing::info!("GitHub secret-scanning report refused: signature");
        return Err(ApiError::unauthenticated());
    }
    let matches: Vec<GitHubMatch> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    if matches.len() > LEAK_REPORT_MAX {
        return Err(ownership_core::Error::invalid(
            "body",
            format!("at most {LEAK_REPORT_MAX} matches per report"),
        )
        .into());
    }
    let digests: Vec<_> = matches.iter().map(|m| digest_of(&m.token)).collect();
    let outcomes = state
        .store
        .revoke_leaked(&SystemScope::background(), &digests, LeakSource::GitHub)
        .await?;
    for m in &matches {
        // Where it was found is not a secret, and tells the owner where to clean up.
        tracing::info!(url = ?m.url, source = ?m.source, kind = %m.token_type, "GitHub secret-scanning match");
    }
    Ok(ApiJson(
        matches
            .into_iter()
            .zip(digests)
            .zip(outcomes)
            .map(|((m, digest), outcome)| GitHubLabel {
                token_hash: digest.to_hex(),
                token_type: m.token_type,
                label: if outcome.is_ours() {
                    "true_positive"
                } else {
                    "false_positive"
                },
            })
            .collect(),
    ))
}
