//! A downstream app that protects its *own* route with `ownership_http::Authenticated`,
//! on the embedded libSQL store that the `ownership` binary manages.
//!
//! ```sh
//! ownership --database-url app.db users add alice   # prints alice's token, once
//! OWNERSHIP_DB=app.db cargo run -p ownership-http --example downstream
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/hello   # hello, alice
//! ```
//!
//! A request without a valid token gets the library's 401 (with `WWW-Authenticate:
//! Bearer` and the JSON error body); a store outage is a 503, never a pass. An app that
//! cannot open the store asks the server instead, through `ownership-client`: see that
//! crate's `remote_downstream` example.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Router, routing::get};
use ownership_http::{AuthState, Authenticated};
use ownership_store::cache::{CacheConfig, Cached};
use ownership_store::{SystemClock, libsql::LibsqlStore};

/// The protected route: the extractor has already checked the token.
async fn hello(Authenticated(caller): Authenticated) -> String {
    format!("hello, {}", caller.identity().owner_id())
}

/// The app's router. `AuthState` is its state here; in a bigger app, implement
/// `FromRef<YourState> for AuthState` instead.
fn app(auth: AuthState) -> Router {
    Router::new().route("/hello", get(hello)).with_state(auth)
}

/// Migrates the store and puts the cache in front (warm requests read nothing).
async fn auth_state(store: LibsqlStore) -> Result<AuthState, Box<dyn std::error::Error>> {
    store.migrate_to(None).await?;
    let cached = Cached::new(store, Arc::new(SystemClock), CacheConfig::default());
    Ok(AuthState::for_store(Arc::new(cached)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("OWNERSHIP_DB").unwrap_or_else(|_| "ownership.db".into());
    let store = LibsqlStore::open_file(path.as_ref(), Arc::new(SystemClock)).await?;
    let auth = auth_state(store).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    // Connect info lets the limit on failed authentications see client addresses.
    let service = app(auth).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode, header};
    use ownership_core::OwnerId;
    use ownership_store::OsRandom;
    use tower::ServiceExt as _;

    use super::*;

    async fn get(app: Router, token: Option<&str>) -> (StatusCode, String, bool) {
        let mut request = Request::get("/hello");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenged = response.headers().get(header::WWW_AUTHENTICATE).is_some();
        let body = to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        (
            status,
            String::from_utf8(body.to_vec()).unwrap(),
            challenged,
        )
    }

    #[tokio::test]
    async fn the_route_greets_the_owner_of_a_valid_token_and_refuses_others() {
        let store = LibsqlStore::open_memory(Arc::new(SystemClock))
            .await
            .unwrap();
        store.migrate_to(None).await.unwrap();
        // A first user, as `ownership serve` makes on an empty store.
        let alice = OwnerId::parse("alice").unwrap();
        let (_, token) = ownership_core::service::bootstrap_owner(&store, &alice, &mut OsRandom)
            .await
            .unwrap();
        let app = app(auth_state(store).await.unwrap());

        let (status, body, _) = get(app.clone(), Some(token.expose())).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello, alice"));

        let mangled = token.expose().replace('_', "-");
        for bad in [None, Some("garbage"), Some(mangled.as_str())] {
            let (status, body, challenged) = get(app.clone(), bad).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(challenged, "401 without `WWW-Authenticate`");
            assert!(body.contains(r#""code":"unauthenticated""#), "{body}");
        }
    }
}
