//! Plain HTTP calls to a running server, for the suites that drive the real binary: a
//! client with a generous timeout, and one request with its status, JSON body (or the text,
//! as a JSON string) and whether it carried `WWW-Authenticate`.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Polls `probe` every 50 ms until it returns `Ok`, for at most `patience`; then fails
/// with `what` and the last `Err` it gave.
pub async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(
                start.elapsed() < patience,
                "{what}: still not so after {patience:?}; last: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client with a 60 s timeout (debug builds on a loaded machine).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// An HTTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
    /// Whether `WWW-Authenticate` was sent (the mark of a refused authentication).
    pub challenged: bool,
}

/// `method base+path`, with a bearer token and a JSON body when given.
pub async fn try_call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Reply, reqwest::Error> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let mut request = http.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let challenged = response
        .headers()
        .contains_key(reqwest::header::WWW_AUTHENTICATE);
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Reply {
        status,
        body,
        challenged,
    })
}
