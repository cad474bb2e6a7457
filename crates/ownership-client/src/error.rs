//! What a call can fail with: the server's refusal (its status and JSON error code), the
//! transport, an answer that is not what the API describes, or input the client refused
//! to send.

use std::time::Duration;

use serde::Deserialize;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status and its JSON error body
    /// (`{"error": {"code", "message"}}`, docs/api.md).
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status (400, 401, 403, 404, 409, 413, 429, 503, …).
        status: u16,
        /// The snake_case error code (`not_found`, `forbidden`, `conflict`, …).
        code: String,
        /// The server's human-readable text.
        message: String,
        /// `Retry-After` of a 429 or 503, when the server sent one.
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or the answer not read (connection, TLS, timeout).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered something that does not match the API (a body that is not the
    /// documented JSON, or an unexpected status).
    #[error("unexpected answer ({status}): {detail}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// What did not match.
        detail: String,
    },
    /// The client refused the input before sending it (a base URL that cannot be a base,
    /// say).
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl Error {
    /// The server's error code, when the server refused the call.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            Error::Transport(e) => e.status().map(|s| s.as_u16()),
            Error::Invalid(_) => None,
        }
    }

    /// True for a 404 `not_found` (the object does not exist or is not the caller's).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Deserialize)]
struct Body {
    error: Inner,
}

#[derive(Deserialize)]
struct Inner {
    code: String,
    message: String,
}

/// The error of a non-2xx answer with status `status`, headers and body `text`.
pub(crate) fn from_answer(status: u16, retry_after: Option<Duration>, text: &str) -> Error {
    match serde_json::from_str::<Body>(text) {
        Ok(Body { error }) => Error::Api {
            status,
            code: error.code,
            message: error.message,
            retry_after,
        },
        Err(e) => Error::Unexpected {
            status,
            detail: format!("not the JSON error body: {e}"),
        },
    }
}
