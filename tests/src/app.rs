//! `spawn_app`: the real server (`ownership_cli::server`, exactly what `ownership serve`
//! runs) on an ephemeral loopback port, on a fresh libSQL file or a fresh PostgreSQL
//! database, with typed helpers for talking to it.

use std::net::SocketAddr;
use std::sync::Arc;

use ownership_cli::backend::Location;
use ownership_cli::server::{self, ServerConfig};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::logcheck::{self, Kind, Secrets};
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
    /// Every secret handed out or sent during the run (see [`crate::logcheck`]).
    pub secrets: Secrets,
    /// Where this server's part of the captured log starts.
    pub log_from: usize,
    log_checked: bool,
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
    spawn_backend(backend, None, tweak).await
}

async fn spawn_backend(
    backend: Backend,
    listener: Option<tokio::net::TcpListener>,
    tweak: impl FnOnce(&mut ServerConfig),
) -> TestApp {
    let log_from = logcheck::capture().len();
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
    spawn_on(location, url, dir, log_from, listener, tweak).await
}

/// [`spawn_app_with`] on a listener bound already, for a configuration that must know
/// the server's address (a redirect URI).
pub async fn spawn_app_on(
    backend: Backend,
    listener: tokio::net::TcpListener,
    tweak: impl FnOnce(&mut ServerConfig),
) -> TestApp {
    spawn_backend(backend, Some(listener), tweak).await
}

/// Starts the server on `location` (whose data `dir` holds, for libSQL).
async fn spawn_on(
    location: Location,
    url: String,
    dir: Option<tempfile::TempDir>,
    log_from: usize,
    listener: Option<tokio::net::TcpListener>,
    tweak: impl FnOnce(&mut ServerConfig),
) -> TestApp {
    let mut config = ServerConfig::new(location).expect("config");
    tweak(&mut config);
    let secrets = Secrets::default();
    record_configured(&secrets, &config);
    let prepared = server::prepare(&config).await.expect("server prepares");
    let owner_token = prepared
        .first_owner_token
        .as_ref()
        .map(|(_, t)| t.expose().to_owned())
        .unwrap_or_default();
    secrets.record(Kind::Token, &owner_token);
    let listener = match listener {
        Some(l) => l,
        None => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    };
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
        secrets,
        log_from,
        log_checked: false,
    }
}

/// Records the secrets of a configuration: bootstrap, legacy and provisioned tokens and
/// key material.
fn record_configured(secrets: &Secrets, config: &ServerConfig) {
    let s = &config.secrets;
    for token in [&s.bootstrap_token, &s.legacy_token].into_iter().flatten() {
        secrets.record_config(Kind::Token, token);
    }
    if let Some(table) = &s.user_tokens {
        secrets.record_config(Kind::Token, table);
    }
    for key in [&s.master_key, &s.previous_master_key, &s.pairing_key]
        .into_iter()
        .flatten()
    {
        secrets.record_key(key);
    }
    if let Some(master) = &s.master_key {
        let derived = ownership_core::pairing::PairingKey::derive_from_master(master);
        secrets.record_key(derived.as_bytes());
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
        self.record_query(path);
        if let Some(t) = token {
            self.secrets.record(Kind::Token, t);
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            self.secrets.record_json(&b);
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        self.secrets.record_set_cookies(&headers);
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.secrets.record_json(&body);
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

    /// Records the token of a query string (`?token=…`, accepted on the SSE route).
    fn record_query(&self, path: &str) {
        let Some((_, query)) = path.split_once('?') else {
            return;
        };
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && (key == "token" || key == "access_token")
            {
                self.secrets.record(Kind::Token, value);
            }
        }
    }

    /// Asserts that no secret recorded by this app, nor anything shaped like one of our
    /// tokens or signing secrets, appears in the captured log from this app's start
    /// (whichever server or task wrote it). Earlier bytes cannot hold this app's secrets:
    /// its server issued them after it started, and a value the test sent it that was
    /// also sent to an earlier app is checked by that app from its own start. (Scanning
    /// the whole buffer for every app made `http_e2e` take twice as long.)
    #[track_caller]
    pub fn assert_logs_clean(&mut self) {
        self.log_checked = true;
        let secrets = self.secrets.snapshot();
        if let Err(leak) = logcheck::capture().check_since(self.log_from, &secrets) {
            panic!("secret leaked into the server log ({}): {leak}", self.base);
        }
    }

    /// Stops the server, keeps its data, and starts a new one on it configured by
    /// `tweak` (as an operator restarts it): a start that fails panics with its error.
    pub async fn restart(mut self, tweak: impl FnOnce(&mut ServerConfig)) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.assert_logs_clean();
        let dir = self._dir.take();
        let url = self.database_url.clone();
        let location = match &dir {
            Some(_) => Location::LibsqlFile(url.clone().into()),
            None => Location::Postgres(url.clone()),
        };
        let log_from = logcheck::capture().len();
        spawn_on(location, url, dir, log_from, None, tweak).await
    }

    /// Stops the server (in-flight requests finish), waits for it and checks its log
    /// ([`TestApp::assert_logs_clean`]).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.assert_logs_clean();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if !self.log_checked && !std::thread::panicking() {
            self.assert_logs_clean();
        }
    }
}

/// Shared handle for tests that spawn tasks.
pub type SharedApp = Arc<TestApp>;

/// Declares each named `async fn scenario(backend: Backend)` of the calling test file as
/// two tests, `scenario::libsql` and `scenario::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn libsql() {
                super::$scenario($crate::app::Backend::Libsql).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario($crate::app::Backend::Postgres).await;
            }
        }
    )*};
}
