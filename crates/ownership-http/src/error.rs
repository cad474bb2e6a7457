//! The one mapping from errors to HTTP: status, `{"error":{"code","message"}}`, and the
//! headers some statuses need. Only this module knows status codes.
//!
//! Messages never carry SQL, driver text, secrets or internal detail: a store error is
//! `503 unavailable`, an integrity failure `500 internal`, and what went wrong is logged
//! by the [`log_errors`] middleware, not sent.

use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ownership_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// An error on its way to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
    /// What to log (never sent).
    detail: Option<String>,
}

/// The error body: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error's code (snake_case, stable) and a human message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code: `invalid_request`, `unauthenticated`, `forbidden`,
    /// `not_found`, `invalid_code`, `method_not_allowed`, `timeout`, `conflict`,
    /// `quota_exceeded`,
    /// `payload_too_large`, `unsupported_media_type`, `rate_limited`, `internal`,
    /// `unavailable`, `secrets_disabled` or `webhooks_disabled`. Clients should treat a
    /// code they do not know by its HTTP status.
    #[schema(example = "invalid_request")]
    pub code: &'static str,
    /// Human-readable text.
    #[schema(example = "invalid limit: must be between 1 and 500")]
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            detail: None,
        }
    }

    /// 400 with a message about the input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401: no or bad token. Deliberately the same whatever was wrong.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid bearer token is required",
        )
    }

    /// 403: the token's kind or the caller's role does not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: absent, or not the caller's (never told apart).
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    /// 404 `invalid_code`: the answer to a pairing code that does not redeem, whatever
    /// the reason.
    pub fn invalid_code() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_code",
            "that code is not valid or has expired",
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry later",
            )
        }
    }

    /// 503: the store could not be reached. Fail closed.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "service unavailable; retry later",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The body this error is sent with, as the OpenAPI document's examples show it.
    pub(crate) fn example(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }

    fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, reason } => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("invalid {field}: {reason}"),
            ),
            Error::NotFound => Self::not_found(),
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            e @ Error::QuotaExceeded { .. } => {
                Self::new(StatusCode::CONFLICT, "quota_exceeded", e.to_string())
            }
            Error::Forbidden(m) => Self::forbidden(m),
            Error::Unauthenticated => Self::unauthenticated(),
            Error::RateLimited { retry_after } => Self::rate_limited(retry_after),
            Error::Unavailable(detail) => Self::unavailable().with_detail(detail),
            Error::Disabled(what) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                disabled_code(what),
                format!("{what} are disabled on this server"),
            ),
            Error::Integrity(detail) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .with_detail(detail),
            // Error is non_exhaustive: anything new is an internal error until mapped.
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .with_detail(other.to_string()),
        }
    }
}

fn disabled_code(what: &str) -> &'static str {
    match what {
        "secrets" => "secrets_disabled",
        "webhooks" => "webhooks_disabled",
        _ => "disabled",
    }
}

/// Logged by [`log_errors`]: what went wrong behind a 5xx (or a 4xx worth noting).
#[derive(Debug, Clone)]
pub struct LoggedError {
    /// Status sent.
    pub status: StatusCode,
    /// Code sent.
    pub code: &'static str,
    /// The internal detail, if any.
    pub detail: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        let headers = res.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.extensions_mut().insert(LoggedError {
            status: self.status,
            code: self.code,
            detail: self.detail,
        });
        res
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                payload_too_large()
            }
            JsonRejection::JsonDataError(e) => Self::bad_request(sanitize(&e.body_text())),
            _ => Self::bad_request("the body is not valid JSON"),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        Self::bad_request("invalid path parameter")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(_: QueryRejection) -> Self {
        Self::bad_request("invalid query string")
    }
}

/// 413.
pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is too large",
    )
}

/// serde's messages name fields and types, never values beyond what the client sent;
/// still, keep them to one short line.
fn sanitize(text: &str) -> String {
    let line: String = text
        .replace(
            "Failed to deserialize the JSON body into the target type: ",
            "",
        )
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if line.is_empty() {
        "invalid JSON body".into()
    } else {
        line
    }
}

/// Middleware: logs the errors handlers returned (5xx at error level with their internal
/// detail, 4xx at debug), and maps bare framework responses (unknown route, wrong method,
/// body too large) to the JSON error body.
pub async fn log_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    if let Some(e) = res.extensions().get::<LoggedError>() {
        if e.status.is_server_error() {
            tracing::error!(%method, %path, status = e.status.as_u16(), code = e.code, detail = e.detail.as_deref().unwrap_or(""), "request failed");
        } else {
            tracing::debug!(%method, %path, status = e.status.as_u16(), code = e.code, "request refused");
        }
        return res;
    }
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let mapped = match status {
            StatusCode::NOT_FOUND => ApiError::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => {
                ApiError::new(status, "method_not_allowed", "method not allowed")
            }
            StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
            StatusCode::REQUEST_TIMEOUT => {
                ApiError::new(status, "timeout", "the request took too long")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::new(status, "unsupported_media_type", "unsupported media type")
            }
            s if s.is_server_error() => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            ),
            _ => ApiError::new(status, "invalid_request", "invalid request"),
        };
        return mapped.into_response();
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_never_reach_the_client() {
        let e = ApiError::from(Error::Unavailable(
            "relation \"tokens\" does not exist".into(),
        ));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.message.contains("relation"));
        let e = ApiError::from(Error::Integrity("bad row".into()));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.message, "internal error");
    }

    #[test]
    fn unauthenticated_carries_the_challenge() {
        let res = ApiError::unauthenticated().into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let res = ApiError::rate_limited(Duration::from_millis(1500)).into_response();
        assert_eq!(
            res.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
    }
}
