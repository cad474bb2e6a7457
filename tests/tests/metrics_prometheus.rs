//! The metrics listener against the real thing: `ownership serve` (the binary) with
//! `[metrics] listen` on an ephemeral loopback port (from the configuration file on
//! libSQL, from `OWNERSHIP_METRICS__LISTEN` on PostgreSQL), scraped every second by Debian's
//! `prometheus`, whose query API must then answer with our series; and the exposition
//! passes `promtool check metrics` without a single complaint. On a libSQL file and on
//! PostgreSQL.
//!
//! `prometheus` and `promtool` come from Debian's `prometheus` package, which
//! `cargo xtask test` installs when missing; without them these tests fail (never skip).
//! `OWNERSHIP_PROMETHEUS` and `OWNERSHIP_PROMTOOL` override their default paths.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ownership_tests::exposition::{assert_labels_bounded, assert_no_label_carries, value};
use ownership_tests::pg::PgCluster;
use ownership_tests::serve::{Serve, serve_command, start_command};
use serde_json::Value;

/// `$OWNERSHIP_PROMETHEUS`, else Debian's path.
fn prometheus_bin() -> String {
    std::env::var("OWNERSHIP_PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".to_owned())
}

/// `$OWNERSHIP_PROMTOOL`, else Debian's path.
fn promtool_bin() -> String {
    std::env::var("OWNERSHIP_PROMTOOL").unwrap_or_else(|_| "/usr/bin/promtool".to_owned())
}
/// Bound of every wait on a process or on Prometheus.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics_listener_libsql() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ownership.db");
    let file = dir.path().join("ownership.toml");
    std::fs::write(&file, "[metrics]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let mut cmd = serve_command(&db.display().to_string());
    cmd.arg("--config").arg(&file);
    scrape_and_query(cmd, "libsql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics_listener_postgres() {
    let cluster = PgCluster::shared().unwrap_or_else(|e| panic!("PostgreSQL is required: {e}"));
    let url = cluster
        .fresh_database_url()
        .unwrap_or_else(|e| panic!("fresh database: {e}"));
    let mut cmd = serve_command(&url);
    cmd.env("OWNERSHIP_METRICS__LISTEN", "127.0.0.1:0");
    scrape_and_query(cmd, "postgres").await;
}

/// `path`, which must exist.
fn require(path: String) -> String {
    assert!(
        Path::new(&path).is_file(),
        "{path} is missing: install Debian's `prometheus` package (`apt-get install \
         prometheus`; `cargo xtask test` does it when run as root), or name the binary in \
         OWNERSHIP_PROMETHEUS / OWNERSHIP_PROMTOOL"
    );
    path
}

/// The address `serve` logged as `metrics listening`.
fn metrics_address(serve: &Serve) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        for line in serve.log().lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if event["fields"]["message"] == "metrics listening"
                && let Some(address) = event["fields"]["address"].as_str()
            {
                return address.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "serve never logged `metrics listening`:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `prometheus`, killed when dropped; its log goes to a file beside its data.
struct Prometheus {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Self {
        let prometheus = require(prometheus_bin());
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: ownership\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("prometheus.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {prometheus}: {e}"));
        Self {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `promtool check metrics` on `exposition`: its exit status and everything it printed.
fn promtool_check(exposition: &str) -> (bool, String) {
    let promtool = require(promtool_bin());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {promtool}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Polls an instant query until it returns at least one series; the series.
async fn query_until_found(http: &reqwest::Client, prom: &Prometheus, query: &str) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        if let Ok(res) = http
            .get(format!("{}/api/v1/query", prom.base))
            .query(&[("query", query)])
            .send()
            .await
        {
            let text = res.text().await.unwrap_or_default();
            if let Ok(body) = serde_json::from_str::<Value>(&text)
                && body["status"] == "success"
                && let Some(result) = body["data"]["result"].as_array()
                && !result.is_empty()
            {
                return result.clone();
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus returned no series for `{query}` within {WAIT:?}; last answer: \
             {last}\nprometheus log:\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn sample_value(series: &Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

/// `cmd` is `ownership serve` configured with an ephemeral metrics listener.
async fn scrape_and_query(cmd: Command, backend: &str) {
    require(prometheus_bin());
    require(promtool_bin());
    let serve = start_command(cmd, true);
    let token = serve.token.clone().expect("first owner token");
    let metrics = metrics_address(&serve);
    let http = reqwest::Client::new();

    // Some traffic: ok, a bad token, a missing one, an unmatched path, the health check.
    for _ in 0..3 {
        let r = http
            .get(format!("{}/v1/me", serve.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let bad = "not-a-token-q8z";
    for (path, auth) in [
        ("/v1/me", Some(bad)),
        ("/v1/me", None),
        ("/nowhere-q8z", None),
    ] {
        let mut req = http.get(format!("{}{path}", serve.base));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        assert!(req.send().await.unwrap().status().is_client_error());
    }
    assert_eq!(
        http.get(format!("{}/healthz", serve.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The exposition itself: served on its own listener, clean for promtool.
    let res = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let exposition = res.text().await.unwrap();
    let (ok, complaints) = promtool_check(&exposition);
    assert!(
        ok && complaints.trim().is_empty(),
        "promtool check metrics: ok={ok}, said:\n{complaints}\n--- exposition ---\n{exposition}"
    );
    assert!(
        value(
            &exposition,
            "ownership_http_requests_total",
            &[("route", "/v1/me"), ("status", "200")]
        ) >= 3.0
    );
    assert!(
        value(
            &exposition,
            "ownership_store_operation_duration_seconds_count",
            &[("backend", backend)]
        ) >= 1.0
    );
    assert_no_label_carries(&exposition, &[&token, bad, "/nowhere-q8z"]);
    assert_labels_bounded(&exposition);
    // Not on the public listener.
    assert_eq!(
        http.get(format!("{}/metrics", serve.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Prometheus scrapes it and answers queries over it.
    let dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::start(dir.path(), &metrics);
    let up = query_until_found(&http, &prom, "up{job=\"ownership\"} == 1").await;
    assert_eq!(up[0]["metric"]["instance"], metrics.as_str(), "{up:?}");
    let series = query_until_found(&http, &prom, "ownership_http_requests_total").await;
    let me_ok = series
        .iter()
        .find(|s| s["metric"]["route"] == "/v1/me" && s["metric"]["status"] == "200")
        .unwrap_or_else(|| panic!("no /v1/me 200 series: {series:?}"));
    assert_eq!(me_ok["metric"]["method"], "GET");
    assert_eq!(me_ok["metric"]["job"], "ownership");
    assert!(sample_value(me_ok) >= 3.0, "{me_ok:?}");
    assert!(
        series
            .iter()
            .any(|s| s["metric"]["route"] == "unmatched" && s["metric"]["status"] == "404"),
        "{series:?}"
    );
    let malformed = query_until_found(
        &http,
        &prom,
        "ownership_auth_attempts_total{outcome=\"malformed\"}",
    )
    .await;
    assert!(sample_value(&malformed[0]) >= 1.0, "{malformed:?}");
    let latency = query_until_found(
        &http,
        &prom,
        "histogram_quantile(0.5, sum by (le) (ownership_http_request_duration_seconds_bucket{route=\"/v1/me\"}))",
    )
    .await;
    let median = sample_value(&latency[0]);
    assert!(median.is_finite() && median > 0.0, "{latency:?}");
    let store = query_until_found(
        &http,
        &prom,
        &format!("ownership_store_operation_duration_seconds_count{{backend=\"{backend}\"}}"),
    )
    .await;
    assert!(sample_value(&store[0]) >= 1.0, "{store:?}");
    drop(prom);
    drop(serve);
}
