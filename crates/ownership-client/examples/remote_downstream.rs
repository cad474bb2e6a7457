//! A downstream app that does not share the store: it protects its own route by asking
//! the `ownership` server whether the caller's token is valid (`POST /v1/tokens/verify`,
//! with a `verify` service token) through `ownership-client`. (An app that can open the
//! store itself uses the extractors instead: `ownership-http`'s `downstream` example.)
//!
//! ```sh
//! ownership tokens issue --user owner --kinds verify          # prints a verify token
//! OWNERSHIP_URL=http://127.0.0.1:8080 OWNERSHIP_VERIFY_TOKEN=own_… \
//!   cargo run -p ownership-client --example remote_downstream
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3001/hello   # hello, alice
//! ```
//!
//! A request without a valid token gets 401; when the ownership server cannot answer the
//! app answers 503, never a pass.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Router, routing::get};
use ownership_client::{Client, Secret};

/// The protected route: asks the ownership server who the bearer token belongs to.
async fn hello(State(verifier): State<Client>, headers: HeaderMap) -> (StatusCode, String) {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return (
            StatusCode::UNAUTHORIZED,
            "a bearer token is required".into(),
        );
    };
    match verifier.verify(&Secret::new(token)).await {
        Ok(verdict) => match verdict.owner_id {
            Some(owner) if verdict.valid => (StatusCode::OK, format!("hello, {owner}")),
            _ => (StatusCode::UNAUTHORIZED, "invalid token".into()),
        },
        // Fail closed: no answer from the server is no identity.
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the identity service is unavailable".into(),
        ),
    }
}

/// The app's router, on a client acting with a `verify` token.
pub fn app(verifier: Client) -> Router {
    Router::new()
        .route("/hello", get(hello))
        .with_state(verifier)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("OWNERSHIP_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("OWNERSHIP_VERIFY_TOKEN")?;
    let verifier = Client::new(&base)?.with_token(token);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    axum::serve(listener, app(verifier)).await?;
    Ok(())
}
