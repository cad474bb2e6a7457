//! `spawn_app`: the real server (`ownership_cli::server`, exactly what `ownership serve`
//! runs) on an ephemeral loopback port, on a fresh libSQL file or a fresh PostgreSQL
//! database, with typed helpers for talking to it.

use std::net::SocketAddr;
use std::sync::Arc;

use ownership_cli::backend::Location;
use ownership_cli::server::{self, ServerConfig};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::pg::PgCluster;

/// Which store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A libSQL file in a temporary directory.
    Libsql,
    /// A fresh database on the throwaway PostgreSQL cluster.
    Postgres,
}

impl Backend {
    /// Both.
    pub const ALL: [Backend; 2] = [Backend::Libsql, Backend::Postgres];
}

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The first Owner's token.
    pub owner_token: String,
    /// The database URL (for a second process or the CLI).
    pub database_url: String,
    /// A client.
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Starts the server on `backend`; `tweak` may change the configuration first.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let (location, url, dir) = match backend {
        Backend::Libsql => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("ownership.db");
            (
                Location::LibsqlFile(path.clone()),
                path.display().to_string(),
                Some(dir),
            )
        }
        Backend::Postgres => {
            let cluster =
                PgCluster::shared().unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
            let url = cluster
                .fresh_database_url()
                .unwrap_or_else(|e| panic!("fresh database: {e}"));
            (Location::Postgres(url.clone()), url, None)
        }
    };
    let mut config = ServerConfig::new(location).expect("config");
    tweak(&mut config);
    let prepared = server::prepare(&config).await.expect("server prepares");
    let owner_token = prepared
        .first_owner_token
        .as_ref()
        .map(|(_, t)| t.expose().to_owned())
        .unwrap_or_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(server::serve(prepared, listener, async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        owner_token,
        database_url: url,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
        handle: Some(handle),
        _dir: dir,
    }
}

/// Starts the server on `backend` with the defaults.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A response's status and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON.
    pub body: Value,
    /// Body as text.
    pub text: String,
}

impl TestApp {
    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// `GET`.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None).await
    }

    /// `POST` with JSON.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// Creates a user through the owner and returns their token.
    pub async fn create_user(&self, id: &str, role: &str) -> String {
        let r = self
            .post(
                "/v1/admin/users",
                &self.owner_token,
                serde_json::json!({"user_id": id, "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "create user {id}: {}", r.text);
        r.body["token"].as_str().expect("token").to_owned()
    }

    /// Stops the server (in-flight requests finish) and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Shared handle for tests that spawn tasks.
pub type SharedApp = Arc<TestApp>;
