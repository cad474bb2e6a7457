//! The web console (docs/security.md#console) in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, through `fantoccini`), against the real server (`spawn_app`) on a fresh
//! libSQL file and on a fresh PostgreSQL database.
//!
//! Every scenario asserts what a person sees and finds elements the way a person (or a
//! screen reader) does: by their accessible names — label text, button text, link text
//! (`//label[normalize-space()='Access token']`, `//button[normalize-space()='Sign in']`).
//! Cross-site requests are sent raw, with `reqwest`, carrying the session cookie read
//! from the browser.
//!
//! Each test starts its own `chromedriver --port=<free port>` in its own process group
//! and kills the group (chromedriver and the Chromium it started) when it ends, pass or
//! fail. Missing or broken browser binaries fail the tests, saying why; they never skip.
//! `OWNERSHIP_CHROMEDRIVER` and `OWNERSHIP_CHROMIUM` override the default paths
//! (`/usr/bin/chromedriver`, `/usr/bin/chromium`: Debian's `chromium-driver` and
//! `chromium`, which `cargo xtask test` installs when they are missing).
//!
//! `narrow_screens_and_screenshots` also saves screenshots of the main pages (on its
//! libSQL run) as `console-*.png` in `$OWNERSHIP_SCREENSHOT_DIR`, else in `screenshots/`
//! of the target directory: a test run never rewrites a tracked file. `cargo xtask
//! screenshots` runs it alone and copies the pictures into `docs/img/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use ownership_tests::app::{Backend, TestApp, spawn_app, spawn_app_on, spawn_app_with};
use ownership_tests::oidc::{CLIENT_ID, OidcProvider};
use serde_json::{Value, json};

/// Declares each named `async fn scenario(backend: Backend)` as two tests,
/// `scenario::libsql` and `scenario::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn libsql() {
                super::$scenario(ownership_tests::app::Backend::Libsql).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(ownership_tests::app::Backend::Postgres).await;
            }
        }
    )*};
}

on_both_backends!(
    sign_in_and_out,
    failed_sign_ins_spend_the_address_budget,
    member_links_a_chat_account,
    admin_approves_a_code_for_a_user,
    owner_creates_a_user_whose_token_works,
    hostile_labels_and_ids_render_as_text,
    cross_site_posts_are_refused,
    revoking_the_sign_in_token_ends_the_session,
    narrow_screens_and_screenshots,
    behind_https_the_cookies_are_host_prefixed_and_secure,
    account_and_admin_pages,
    passkeys_register_sign_in_and_remove,
    sign_in_with_an_identity_provider,
    admin_links_an_identity_provider_account,
);

/// The session cookie's name over plain HTTP.
const SESSION_COOKIE: &str = "ownership_session";
/// The message for a wrong, expired or used pairing code.
const INVALID_CODE: &str = "That code is not valid or has expired";
/// How long to wait for a page to show something.
const PATIENCE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------

fn binary(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A chromedriver of our own, in its own process group (killed whole on drop).
struct Driver {
    child: Child,
    url: String,
    chromium: String,
}

impl Driver {
    async fn start() -> Self {
        let exe = binary("OWNERSHIP_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = binary("OWNERSHIP_CHROMIUM", "/usr/bin/chromium");
        for (what, var, path) in [
            ("chromedriver", "OWNERSHIP_CHROMEDRIVER", &exe),
            ("chromium", "OWNERSHIP_CHROMIUM", &chromium),
        ] {
            assert!(
                Path::new(path).exists(),
                "{what} not found at `{path}`: the console browser tests need Debian's \
                 `chromium` and `chromium-driver` packages (`cargo xtask test` installs them \
                 as root; by hand: `apt-get install -y --no-install-recommends chromium \
                 chromium-driver`), or {var} pointing at one"
            );
        }
        let port = free_port();
        let mut child = Command::new(&exe)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{exe}`: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = http.get(format!("{url}/status")).send().await
                && let Ok(v) = res.json::<Value>().await
                && v["value"]["ready"] == json!(true)
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("`{exe} --port={port}` exited at start ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "`{exe} --port={port}` did not report ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            child,
            url,
            chromium,
        }
    }

    /// A fresh headless Chromium (its own profile) pointed at `app`.
    async fn browser(&self, app: &TestApp) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--window-size=1024,768",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let client = builder.connect(&self.url).await.unwrap_or_else(|e| {
            panic!(
                "chromium (`{}`) did not start through chromedriver: {e}",
                self.chromium
            )
        });
        Browser {
            c: client,
            base: app.base.clone(),
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser, and the helpers that find things by their accessible names.
struct Browser {
    c: Client,
    base: String,
    _profile: tempfile::TempDir,
}

fn quoted(name: &str) -> String {
    assert!(!name.contains('\''), "names with quotes are not supported");
    format!("'{name}'")
}

impl Browser {
    async fn goto(&self, path: &str) {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    async fn path(&self) -> String {
        self.c
            .current_url()
            .await
            .expect("current url")
            .path()
            .to_owned()
    }

    async fn page_text(&self) -> String {
        self.c
            .find(Locator::Css("body"))
            .await
            .expect("body")
            .text()
            .await
            .expect("body text")
    }

    /// Waits for an element, failing with the page's text when it never comes.
    /// The text of the element at `xpath`, retried while the page navigates (an element
    /// found on the old page can go stale before its text is read).
    async fn wait_text(&self, xpath: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(e) = self.c.find(Locator::XPath(xpath)).await
                && let Ok(text) = e.text().await
            {
                return text;
            }
            if Instant::now() >= deadline {
                return self.wait_for(xpath).await.text().await.expect("text");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element at `xpath`, once it shows (within `PATIENCE`).
    async fn awaited(&self, xpath: &str) -> Result<Element, fantoccini::error::CmdError> {
        self.c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(xpath))
            .await
    }

    async fn wait_for(&self, xpath: &str) -> Element {
        match self.awaited(xpath).await {
            Ok(e) => e,
            Err(e) => panic!(
                "`{xpath}` not found on {} ({e}); the page says:\n{}",
                self.path().await,
                self.page_text().await
            ),
        }
    }

    async fn count(&self, xpath: &str) -> usize {
        self.c
            .find_all(Locator::XPath(xpath))
            .await
            .expect("find_all")
            .len()
    }

    /// The field labelled `label` (through the label's `for`). A label found on a page
    /// that is being replaced (a form just submitted) goes stale: it is looked up again.
    async fn field(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space()={}]", quoted(label));
        let deadline = std::time::Instant::now() + PATIENCE;
        let id = loop {
            let l = self.wait_for(&xpath).await;
            match l.attr("for").await {
                Ok(id) => break id,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("label `{label}`: {e}"),
            }
        }
        .unwrap_or_else(|| panic!("label `{label}` has no `for`"));
        self.c
            .find(Locator::Id(&id))
            .await
            .unwrap_or_else(|e| panic!("label `{label}` names no field `{id}`: {e}"))
    }

    async fn fill(&self, label: &str, text: &str) {
        let f = self.field(label).await;
        f.clear().await.expect("clear");
        f.send_keys(text).await.expect("type");
    }

    async fn choose(&self, label: &str, option: &str) {
        self.field(label)
            .await
            .select_by_label(option)
            .await
            .unwrap_or_else(|e| panic!("choose `{option}` in `{label}`: {e}"));
    }

    async fn check(&self, label: &str) {
        let f = self.field(label).await;
        if !f.is_selected().await.expect("is_selected") {
            f.click().await.expect("check");
        }
    }

    /// Clicks the element at `xpath` (`what` names it in a failure). One found on a page
    /// that is being replaced (a form just submitted, whose old page matched too) goes
    /// stale before the click: it is looked up again on the new page.
    async fn click(&self, xpath: &str, what: &str) {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            match self.wait_for(xpath).await.click().await {
                Ok(()) => return,
                Err(e)
                    if e.is_stale_element_reference() && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{what}: {e}"),
            }
        }
    }

    async fn press(&self, button: &str) {
        let xpath = format!("//button[normalize-space()={}]", quoted(button));
        self.click(&xpath, &format!("press `{button}`")).await;
    }

    /// Presses the button named `button` in the table row that mentions `row`.
    async fn press_in_row(&self, row: &str, button: &str) {
        let xpath = format!(
            "//tr[td[contains(normalize-space(), {})]]//button[normalize-space()={}]",
            quoted(row),
            quoted(button)
        );
        self.click(&xpath, &format!("press `{button}` for `{row}`"))
            .await;
    }

    async fn follow(&self, link: &str) {
        let xpath = format!("//a[normalize-space()={}]", quoted(link));
        self.click(&xpath, &format!("follow `{link}`")).await;
    }

    async fn has_link(&self, link: &str) -> bool {
        self.count(&format!("//a[normalize-space()={}]", quoted(link)))
            .await
            > 0
    }

    /// Waits for a `role` message (`status` or `alert`) containing `text`.
    async fn expect_message(&self, role: &str, text: &str) -> String {
        self.wait_text(&format!(
            "//*[@role={}][contains(normalize-space(), {})]",
            quoted(role),
            quoted(text)
        ))
        .await
    }

    async fn heading(&self) -> String {
        self.wait_text("//h1").await
    }

    /// Waits until the page's heading is `want` (a click's navigation may still be on the
    /// way when this is called), failing with the page that was shown instead.
    async fn expect_heading(&self, want: &str) {
        let xpath = format!("//h1[normalize-space()='{want}']");
        if self.awaited(&xpath).await.is_err() {
            panic!(
                "the heading {want:?} never showed on {}; the heading is {:?}",
                self.path().await,
                self.heading().await
            );
        }
    }

    async fn sign_in(&self, token: &str) {
        self.goto("/console/login").await;
        self.fill("Access token", token).await;
        self.press("Sign in").await;
        self.wait_for("//button[normalize-space()='Sign out']")
            .await;
    }

    async fn is_on_sign_in_page(&self) -> bool {
        self.path().await == "/console/login"
            && self
                .count("//label[normalize-space()='Access token']")
                .await
                == 1
    }

    async fn session_cookie(&self) -> String {
        self.c
            .get_named_cookie(SESSION_COOKIE)
            .await
            .expect("the session cookie")
            .value()
            .to_owned()
    }

    /// The `csrf` field's value, or `None` while the page is still loading.
    async fn try_csrf(&self) -> Option<String> {
        let field = self.c.find(Locator::Css("input[name=csrf]")).await.ok()?;
        field.attr("value").await.ok().flatten()
    }

    /// The value of the hidden `csrf` field of the page's first form.
    async fn csrf(&self) -> String {
        self.c
            .find(Locator::Css("input[name=csrf]"))
            .await
            .expect("a csrf field")
            .attr("value")
            .await
            .expect("attr")
            .expect("a csrf value")
    }

    async fn new_token(&self) -> String {
        let value = self
            .field("New token")
            .await
            .prop("value")
            .await
            .expect("prop")
            .expect("a value");
        assert!(value.starts_with("own_"), "New token shows `{value}`");
        value
    }

    /// Whether the page is wider than the window (horizontal scroll).
    async fn widths(&self) -> (u64, u64) {
        let v = self
            .c
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .expect("execute");
        (v[0].as_u64().expect("width"), v[1].as_u64().expect("width"))
    }

    async fn close(self) {
        let _ = self.c.close().await;
    }
}

// ---------------------------------------------------------------------------------------
// The REST side
// ---------------------------------------------------------------------------------------

/// A client that does not follow redirects, for raw console requests.
fn raw_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The sign-in page fetched raw: its CSRF cookie (`name=value`) and the same value from
/// the form's `csrf` field.
async fn sign_in_form(raw: &reqwest::Client, app: &TestApp) -> (String, String) {
    let form = raw
        .get(format!("{}/console/login", app.base))
        .send()
        .await
        .unwrap();
    let cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-in form's csrf field")
        .to_owned();
    (cookie, csrf)
}

/// A `channel:<channel>` service token minted by the first Owner.
async fn service_token(app: &TestApp, channel: &str) -> String {
    let r = app
        .post(
            "/v1/admin/service-tokens",
            &app.owner_token,
            json!({ "kinds": [format!("channel:{channel}")], "label": "bot" }),
        )
        .await;
    assert_eq!(r.status, 201, "service token: {}", r.text);
    r.body["token"].as_str().expect("token").to_owned()
}

/// A pairing code for `external_id`, as the chat bot would show it (`ABCD-EFGH`).
async fn pairing_code(app: &TestApp, bot: &str, channel: &str, external_id: &str) -> String {
    let r = app
        .post(
            &format!("/v1/channels/{channel}/pairing-requests"),
            bot,
            json!({ "external_id": external_id, "meta": { "name": "Test Person" } }),
        )
        .await;
    assert!(
        r.status == 201 || r.status == 200,
        "pairing request: {}",
        r.text
    );
    r.body["code"].as_str().expect("code").to_owned()
}

/// How a person might type a code: lower case, a space instead of the dash.
fn typed_loosely(code: &str) -> String {
    code.to_lowercase().replace('-', " ")
}

async fn token_count(app: &TestApp) -> usize {
    let r = app.get("/v1/me/tokens", &app.owner_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["tokens"].as_array().expect("tokens").len()
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// Sign-in says only **Invalid token** for a wrong token and for one without `manage`;
/// a good one lands on the home page with the user and role; every sign-in gets a new
/// session; **Sign out** ends the session on the server (its cookie replayed is refused).
async fn sign_in_and_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let driver = Driver::start().await;
    let b = driver.browser(&app).await;
    let raw = raw_http();

    b.goto("/").await;
    assert!(
        b.is_on_sign_in_page().await,
        "`/` leads to the sign-in page"
    );
    b.expect_heading("Sign in").await;

    b.fill("Access token", "own_u_not-a-real-token").await;
    b.press("Sign in").await;
    assert_eq!(
        b.expect_message("alert", "Invalid token").await,
        "Invalid token"
    );
    assert!(b.is_on_sign_in_page().await);

    let api_only = app
        .post(
            "/v1/me/tokens",
            &app.owner_token,
            json!({ "kinds": ["api"] }),
        )
        .await;
    assert_eq!(api_only.status, 201, "{}", api_only.text);
    b.fill("Access token", api_only.body["token"].as_str().unwrap())
        .await;
    b.press("Sign in").await;
    assert_eq!(
        b.expect_message("alert", "Invalid token").await,
        "Invalid token"
    );
    assert!(
        !b.page_text().await.contains("own_u_"),
        "no token is echoed back"
    );

    b.sign_in(&app.owner_token).await;
    assert_eq!(b.path().await, "/console");
    let heading = b.heading().await;
    assert!(
        heading.contains("owner") && heading.contains("(owner)"),
        "home heading: {heading}"
    );
    for link in [
        "Link a chat account",
        "Tokens",
        "Audit",
        "Pairing requests",
        "Users",
    ] {
        assert!(b.has_link(link).await, "home links to {link}");
    }
    let first = b.session_cookie().await;
    assert!(
        !b.c.current_url().await.unwrap().as_str().contains("own_"),
        "no token in the URL"
    );

    // Sign out ends the session on the server: its cookie, replayed, opens nothing.
    b.press("Sign out").await;
    b.wait_for("//label[normalize-space()='Access token']")
        .await;
    assert!(b.is_on_sign_in_page().await);
    let replay = raw
        .get(format!("{}/console/tokens", app.base))
        .header("cookie", format!("{SESSION_COOKIE}={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303, "a signed-out session is refused");
    assert_eq!(replay.headers()["location"], "/console/login");

    // Every sign-in gets a new session, and a session the browser already carried (one
    // planted by someone else, say) ends rather than being taken over.
    b.sign_in(&app.owner_token).await;
    let second = b.session_cookie().await;
    assert_ne!(first, second, "a new session at every sign-in");
    let (login_cookie, csrf) = sign_in_form(&raw, &app).await;
    let res = raw
        .post(format!("{}/console/login", app.base))
        .header(
            "cookie",
            format!("{SESSION_COOKIE}={second}; {login_cookie}"),
        )
        .form(&[
            ("csrf", csrf.as_str()),
            ("access_token", app.owner_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "signed in");
    let third = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{SESSION_COOKIE}=")))
        .and_then(|v| v.split(';').next())
        .expect("a new session cookie")
        .to_owned();
    assert!(!third.is_empty() && third != second);
    for (cookie, status) in [(&second, 303), (&third, 200)] {
        let res = raw
            .get(format!("{}/console", app.base))
            .header("cookie", format!("{SESSION_COOKIE}={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
    }

    b.close().await;
    app.stop().await;
}

/// Failed sign-ins spend the client address's failed-authentication budget, as failed
/// bearer tokens do: past it, the address's failures are refused for a while, but a good
/// token still signs in.
async fn failed_sign_ins_spend_the_address_budget(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.service.limits.failed_auth_per_address = 3;
    })
    .await;
    let driver = Driver::start().await;
    let b = driver.browser(&app).await;
    b.goto("/console/login").await;
    let mut said = Vec::new();
    for _ in 0..4 {
        // Each rendering of the form carries a fresh CSRF value: wait for the next one.
        let before = b.csrf().await;
        b.fill("Access token", "own_u_wrong").await;
        b.press("Sign in").await;
        let deadline = Instant::now() + PATIENCE;
        while b.try_csrf().await.is_none_or(|now| now == before) {
            assert!(
                Instant::now() < deadline,
                "the sign-in page never came back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let alert = b.wait_text("//*[@role='alert']").await;
        let blocked = alert.starts_with("Too many failed sign-ins");
        said.push(alert);
        if blocked {
            break;
        }
    }
    let (last, first) = said.split_last().expect("at least one attempt");
    assert!(
        first.len() >= 2 && first.iter().all(|m| m == "Invalid token"),
        "before the budget runs out, only `Invalid token`: {said:?}"
    );
    assert!(
        last.starts_with("Too many failed sign-ins") && last.contains("try again in"),
        "the budget of 3 runs out: {said:?}"
    );
    let api = app.get("/v1/me", "own_u_wrong").await;
    assert_eq!(
        api.status, 429,
        "the same budget as the API's: {}",
        api.text
    );
    // Only failures are refused: the Owner's token still signs in from this address.
    b.sign_in(&app.owner_token).await;
    assert!(!b.is_on_sign_in_page().await, "signed in");

    b.close().await;
    app.stop().await;
}

/// A member links a chat account with a code typed loosely, sees it listed, gets
/// **That code is not valid or has expired** for a wrong or used code, unlinks it, has
/// no **Pairing requests** link and gets 403 at its URL.
async fn member_links_a_chat_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bot = service_token(&app, "telegram").await;
    let code = pairing_code(&app, &bot, "telegram", "tg-4242").await;

    let driver = Driver::start().await;
    let b = driver.browser(&app).await;
    b.sign_in(&alice).await;
    let heading = b.heading().await;
    assert!(
        heading.contains("alice") && heading.contains("member"),
        "{heading}"
    );
    assert!(
        !b.has_link("Pairing requests").await,
        "members see no Pairing requests"
    );
    assert!(!b.has_link("Users").await, "members see no Users");

    b.follow("Link a chat account").await;
    b.expect_heading("Link a chat account").await;
    b.fill("Channel", "Telegram").await;
    b.fill("Pairing code", &typed_loosely(&code)).await;
    b.press("Link account").await;
    let said = b.expect_message("status", "tg-4242").await;
    assert!(said.contains("telegram"), "{said}");
    b.wait_for("//tr/td[normalize-space()='tg-4242']").await;
    let resolved = app
        .get("/v1/channels/telegram/identities/tg-4242", &bot)
        .await;
    assert_eq!(resolved.body["owner_id"], "alice", "{}", resolved.text);

    // The same code again, and a code nobody was given.
    for wrong in [code.clone(), "zzzz zzzz".to_owned()] {
        b.fill("Channel", "telegram").await;
        b.fill("Pairing code", &wrong).await;
        b.press("Link account").await;
        b.expect_message("alert", INVALID_CODE).await;
    }

    b.press_in_row("tg-4242", "Unlink").await;
    b.expect_message("status", "Unlinked").await;
    assert_eq!(b.count("//tr/td[normalize-space()='tg-4242']").await, 0);

    // The admin page by its URL: refused, and the browser says so.
    b.goto("/console/admin/pairing").await;
    b.expect_message("alert", "Only Admins and Owners").await;
    let raw = raw_http();
    let res = raw
        .get(format!("{}/console/admin/pairing", app.base))
        .header(
            "cookie",
            format!("{SESSION_COOKIE}={}", b.session_cookie().await),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = raw
        .get(format!("{}/console/admin/users", app.base))
        .header(
            "cookie",
            format!("{SESSION_COOKIE}={}", b.session_cookie().await),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    b.close().await;
    app.stop().await;
}

/// An Admin sees a pending request (never its code), approves the code a person reads out
/// for a named user, and sees the 409 of a rebind as a message.
async fn admin_approves_a_code_for_a_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app.create_user("ada", "admin").await;
    app.create_user("bob", "member").await;
    let bot = service_token(&app, "telegram").await;
    let code = pairing_code(&app, &bot, "telegram", "tg-777").await;

    let driver = Driver::start().await;
    let b = driver.browser(&app).await;
    b.sign_in(&ada).await;
    b.follow("Pairing requests").await;
    b.expect_heading("Pairing requests").await;
    // Listed by default, with every channel's requests; then filtered to one channel.
    b.wait_for("//tr/td[normalize-space()='tg-777']").await;
    b.choose("Show channel", "telegram").await;
    b.press("Show").await;
    b.wait_for("//tr/td[normalize-space()='tg-777']").await;
    let source = b.c.source().await.unwrap();
    let bare = code.replace('-', "");
    assert!(
        !source.contains(&code) && !source.contains(&bare),
        "the pending list never shows a code"
    );
    assert!(
        source.contains("Test Person"),
        "the adapter's meta is shown"
    );

    b.fill("Channel", "telegram").await;
    b.fill("Pairing code", &typed_loosely(&code)).await;
    b.fill("User", "bob").await;
    b.press("Approve").await;
    let said = b.expect_message("status", "tg-777").await;
    assert!(said.contains("bob"), "{said}");
    assert_eq!(
        b.count("//tr/td[normalize-space()='tg-777']").await,
        0,
        "no longer pending"
    );
    let resolved = app
        .get("/v1/channels/telegram/identities/tg-777", &bot)
        .await;
    assert_eq!(resolved.body["owner_id"], "bob", "{}", resolved.text);

    // The same chat account asks again; approving it for someone else is a conflict.
    let again = pairing_code(&app, &bot, "telegram", "tg-777").await;
    b.fill("Channel", "telegram").await;
    b.fill("Pairing code", &again).await;
    b.fill("User", "ada").await;
    b.press("Approve").await;
    let said = b.expect_message("alert", "This chat account is").await;
    assert!(said.contains("unlink"), "{said}");
    let resolved = app
        .get("/v1/channels/telegram/identities/tg-777", &bot)
        .await;
    assert_eq!(resolved.body["owner_id"], "bob", "never silently moved");

    // A wrong code for a real user.
    b.fill("Channel", "telegram").await;
    b.fill("Pairing code", "zzzz-zzzz").await;
    b.fill("User", "bob").await;
    b.press("Approve").await;
    b.expect_message("alert", INVALID_CODE).await;

    b.close().await;
    app.stop().await;
}

/// An Owner creates a user; the token shown once works against the REST API; the user
/// signs in; suspending them through the API ends their console session. A role change
/// and a deletion behind its confirmation page go through the same rules.
async fn owner_creates_a_user_whose_token_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let driver = Driver::start().await;
    let owner = driver.browser(&app).await;
    owner.sign_in(&app.owner_token).await;
    owner.follow("Users").await;
    owner.expect_heading("Users").await;
    owner.fill("User id", "carol").await;
    owner.choose("Role", "member").await;
    owner.press("Create user").await;
    owner.expect_message("status", "carol").await;
    let carol = owner.new_token().await;
    let me = app.get("/v1/me", &carol).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["user_id"], "carol");
    assert_eq!(me.body["role"], "member");

    // Shown once: the next view of the page has no token.
    owner.follow("Users").await;
    owner
        .wait_for("//tr/td[contains(normalize-space(), 'carol')]")
        .await;
    assert_eq!(
        owner.count("//label[normalize-space()='New token']").await,
        0
    );
    assert!(!owner.c.source().await.unwrap().contains(&carol));

    let cb = driver.browser(&app).await;
    cb.sign_in(&carol).await;
    assert!(cb.heading().await.contains("carol"));
    let suspended = app
        .call(
            "PUT",
            "/v1/admin/users/carol/status",
            Some(&app.owner_token),
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert_eq!(suspended.status, 200, "{}", suspended.text);
    cb.goto("/console/tokens").await;
    assert!(
        cb.is_on_sign_in_page().await,
        "a suspended user's console session ends on the next request"
    );
    cb.fill("Access token", &carol).await;
    cb.press("Sign in").await;
    cb.expect_message("alert", "Invalid token").await;
    cb.close().await;

    // The owner's view follows; resume, promote, then delete behind a confirmation.
    owner.follow("Users").await;
    owner.press_in_row("carol", "Resume").await;
    owner
        .expect_message("status", "carol is active again")
        .await;
    owner.choose("Role for carol", "admin").await;
    owner.press_in_row("carol", "Change role").await;
    owner.expect_message("status", "carol is now admin").await;
    owner.press_in_row("carol", "Delete").await;
    owner.expect_heading("Delete carol?").await;
    owner.press("Delete user").await;
    owner.expect_message("status", "Deleted carol").await;
    assert_eq!(app.get("/v1/me", &carol).await.status, 401);

    // The rules of docs/security.md#authorization hold here too: nobody suspends themselves.
    let raw = raw_http();
    let res = raw
        .post(format!("{}/console/admin/users/status", app.base))
        .header(
            "cookie",
            format!("{SESSION_COOKIE}={}", owner.session_cookie().await),
        )
        .header("origin", app.base.clone())
        .form(&[
            ("csrf", owner.csrf().await.as_str()),
            ("user", "owner"),
            ("status", "suspended"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    owner.goto("/console/admin/users").await;
    owner.expect_message("alert", "own status").await;

    owner.close().await;
    app.stop().await;
}

/// Script in a label or a user id renders as text: no element is made of it and no
/// dialog opens.
async fn hostile_labels_and_ids_render_as_text(backend: Backend) {
    const LABEL: &str = "<img src=x onerror=alert(1)>";
    const USER: &str = "\"><svg/onload=alert(2)>";
    let app = spawn_app(backend).await;
    let driver = Driver::start().await;
    let b = driver.browser(&app).await;
    b.sign_in(&app.owner_token).await;

    b.follow("Tokens").await;
    b.fill("Label", LABEL).await;
    b.check("api").await;
    b.press("Create token").await;
    let minted = b.new_token().await;
    let me = app.get("/v1/me", &minted).await;
    assert_eq!(me.body["token"]["kinds"], json!(["api"]), "{}", me.text);
    let cell = b
        .wait_for("//tr/td[@data-label='Label'][starts-with(normalize-space(), '<img')]")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(cell, LABEL);
    assert_eq!(b.count("//img").await, 0, "no image element was made");
    assert!(b.c.get_alert_text().await.is_err(), "no dialog opened");

    b.follow("Users").await;
    b.fill("User id", USER).await;
    b.press("Create user").await;
    b.expect_message("status", "Created").await;
    b.wait_for("//tr/td[@data-label='User'][contains(., 'svg')]")
        .await;
    assert_eq!(b.count("//svg | //*[local-name()='svg']").await, 0);
    b.follow("Pairing requests").await;
    b.follow("Audit").await;
    b.wait_for("//tr/td[@data-label='Object'][contains(., 'svg')]")
        .await;
    assert_eq!(b.count("//img | //*[local-name()='svg']").await, 0);
    assert!(b.c.get_alert_text().await.is_err(), "no dialog opened");

    b.close().await;
    app.stop().await;
}

/// Forged requests carrying a live session's cookie are refused (403) and change
/// nothing: another `Origin`, `Sec-Fetch-Site: cross-site`, a missing or wrong CSRF token.
/// The cookie opens no `/v1` route. Every console response carries the security headers.
async fn cross_site_posts_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let driver = Driver::start().await;
    let b = driver.browser(&app).await;
    b.sign_in(&app.owner_token).await;
    b.follow("Tokens").await;
    let cookie = format!("{SESSION_COOKIE}={}", b.session_cookie().await);
    let csrf = b.csrf().await;
    let before = token_count(&app).await;
    let raw = raw_http();
    let url = format!("{}/console/tokens", app.base);
    let post = |headers: Vec<(&'static str, String)>, form: Vec<(&'static str, String)>| {
        let mut req = raw.post(&url).header("cookie", &cookie);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.form(&form).send()
    };
    let evil = ("origin", "https://evil.example".to_owned());
    let ours = ("origin", app.base.clone());
    let fields = |csrf: &str, form_id: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("form_id", form_id.to_owned()),
            ("label", "forged".to_owned()),
            ("kind", "manage".to_owned()),
        ]
    };

    // A cross-site form post: no CSRF token, another origin.
    let res = post(vec![evil.clone()], fields("", "f1")).await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("did not come from a page of this console")
    );
    // Each defence on its own.
    let res = post(vec![evil.clone()], fields(&csrf, "f2")).await.unwrap();
    assert_eq!(res.status(), 403, "another origin, even with the token");
    let res = post(
        vec![("sec-fetch-site", "cross-site".to_owned())],
        fields(&csrf, "f3"),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403, "Sec-Fetch-Site: cross-site");
    let res = post(vec![ours.clone()], fields("", "f4")).await.unwrap();
    assert_eq!(res.status(), 403, "no CSRF token");
    let res = post(vec![ours.clone()], fields("not-the-token", "f5"))
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a wrong CSRF token");
    assert_eq!(token_count(&app).await, before, "nothing was minted");

    // Sign-in and sign-out cannot be forged either.
    let res = raw
        .post(format!("{}/console/logout", app.base))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = raw
        .post(format!("{}/console/login", app.base))
        .header("origin", "https://evil.example")
        .form(&[("access_token", app.owner_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "login CSRF");
    let res = raw
        .post(format!("{}/console/login", app.base))
        .form(&[("access_token", app.owner_token.as_str()), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "sign-in without its cookie's value");

    // The control: the same request from the page itself works, so the refusals above
    // were the defences at work.
    let res = post(vec![ours.clone()], fields(&csrf, "f6")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(token_count(&app).await, before + 1);
    b.goto("/console/tokens").await;
    b.wait_for("//tr/td[normalize-space()='forged']").await;

    // The console cookie is no credential for the API.
    let res = raw
        .get(format!("{}/v1/me", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Headers on pages, redirects, refusals and the stylesheet.
    for (path, with_cookie) in [
        ("/console", true),
        ("/console/tokens", true),
        ("/console/login", false),
        ("/console/tokens", false),
        ("/console/nowhere", true),
        ("/console/assets/console.css", false),
    ] {
        let mut req = raw.get(format!("{}{path}", app.base));
        if with_cookie {
            req = req.header("cookie", &cookie);
        }
        let res = req.send().await.unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: CSP `{csp}`");
        }
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
    let login = raw
        .get(format!("{}/console/login", app.base))
        .send()
        .await
        .unwrap();
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }

    b.close().await;
    app.stop().await;
}

/// Revoking the token a session signed in with, through the API, ends the session on the
/// next request.
async fn revoking_the_sign_in_token_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let minted = app
        .post(
            "/v1/me/tokens",
            &app.owner_token,
            json!({ "kinds": ["manage"], "label": "console" }),
        )
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    let token = minted.body["token"].as_str().unwrap().to_owned();
    let id = minted.body["id"].as_str().unwrap().to_owned();

    let driver = Driver::start().await;
    let b = driver.browser(&app).await;
    b.sign_in(&token).await;
    b.follow("Tokens").await;
    b.wait_for("//tr/td[contains(normalize-space(), 'this session')]")
        .await;

    let revoked = app
        .call(
            "DELETE",
            &format!("/v1/me/tokens/{id}"),
            Some(&app.owner_token),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    b.goto("/console/tokens").await;
    assert!(
        b.is_on_sign_in_page().await,
        "the session ended with its token"
    );
    b.goto("/console").await;
    assert!(b.is_on_sign_in_page().await, "and stays ended");

    // Rotating the session's own token from the console keeps the session, on the new
    // token; the old value stops working.
    b.sign_in(&app.owner_token).await;
    b.follow("Tokens").await;
    b.press_in_row("this session", "Rotate").await;
    let fresh = b.new_token().await;
    assert_eq!(app.get("/v1/me", &app.owner_token).await.status, 401);
    assert_eq!(app.get("/v1/me", &fresh).await.status, 200);
    b.follow("Audit").await;
    b.expect_message("status", "Audit chain intact").await;

    b.close().await;
    app.stop().await;
}

/// Where `narrow_screens_and_screenshots` saves its pictures: `$OWNERSHIP_SCREENSHOT_DIR`
/// when set (`cargo xtask screenshots` sets it), else `screenshots/` in the target
/// directory, never a tracked folder.
fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OWNERSHIP_SCREENSHOT_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // Cargo sets CARGO_TARGET_TMPDIR (`<target>/tmp`) for integration tests.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("screenshots")
}

/// Every page fits a 360 px wide window (no horizontal scroll), and, on the libSQL run,
/// the main pages are saved as screenshots (see [`screenshot_dir`]).
async fn narrow_screens_and_screenshots(backend: Backend) {
    // Passkeys on too (WebAuthn needs `localhost`, see
    // `passkeys_register_sign_in_and_remove`), so their page shows one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let app = spawn_app_on(backend, listener, move |c| {
        with_secrets(c);
        c.service.passkeys = Some(
            ownership_http::console::PasskeySettings::new("localhost", &origin)
                .expect("passkey settings"),
        );
    })
    .await;
    let (hook_url, _) = webhook_receiver().await;
    for (name, value) in [
        ("db-password", "s3cret value"),
        ("smtp-token", "another one"),
    ] {
        let r = app
            .call(
                "PUT",
                &format!("/v1/me/secrets/{name}"),
                Some(&app.owner_token),
                Some(json!({ "value": value })),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let alice = app.create_user("alice", "member").await;
    app.create_user("bob-the-builder", "admin").await;
    let bot = service_token(&app, "telegram").await;
    let code = pairing_code(&app, &bot, "telegram", "tg-100200300").await;
    let r = app
        .post(
            "/v1/pairing/telegram/redeem",
            &alice,
            json!({ "code": code }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    pairing_code(&app, &bot, "telegram", "tg-555000111").await;
    pairing_code(&app, &bot, "telegram", "tg-424242").await;
    let discord = service_token(&app, "discord").await;
    pairing_code(&app, &discord, "discord", "dc-31337").await;
    let ci = app
        .post(
            "/v1/me/tokens",
            &app.owner_token,
            json!({ "kinds": ["api"], "label": "ci deploy key with a rather long label", "expires_in_seconds": 2_592_000 }),
        )
        .await;
    assert_eq!(ci.status, 201);

    let driver = Driver::start().await;
    let mut b = driver.browser(&app).await;
    b.base = app.base.replace("127.0.0.1", "localhost");
    b.add_virtual_authenticator().await;
    let pages = [
        ("login", "/console/login"),
        ("home", "/console"),
        ("link", "/console/link"),
        ("tokens", "/console/tokens"),
        ("passkeys", "/console/passkeys"),
        ("admin-users", "/console/admin/users"),
        ("admin-oidc", "/console/admin/users/oidc?user=alice"),
        ("admin-pairing", "/console/admin/pairing"),
        ("secrets", "/console/secrets"),
        ("resources", "/console/resources"),
        ("webhook", "/console/webhook"),
        ("admin-service-tokens", "/console/admin/service-tokens"),
        ("audit", "/console/audit"),
    ];

    let dir = screenshot_dir();
    let save = |name: &str, png: Vec<u8>| {
        if backend == Backend::Libsql {
            assert!(
                png.starts_with(b"\x89PNG"),
                "the {name} screenshot is not a PNG"
            );
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            let file = dir.join(format!("console-{name}.png"));
            std::fs::write(&file, png)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        }
    };

    // 360 px: nothing scrolls sideways.
    b.c.set_window_size(360, 800).await.expect("resize");
    for (name, path) in pages {
        if name == "home" {
            b.sign_in(&app.owner_token).await;
        }
        b.goto(path).await;
        b.wait_for("//h1").await;
        let (scroll, inner) = b.widths().await;
        assert!(inner <= 360, "the window is 360 px wide (inner {inner})");
        assert!(
            scroll <= inner,
            "{path} scrolls sideways at 360 px: {scroll} > {inner}"
        );
        if name == "tokens" {
            save("tokens-360", b.c.screenshot().await.expect("screenshot"));
        }
    }
    b.goto("/console/link").await;
    b.fill("Channel", "telegram").await;
    b.fill("Pairing code", "zzzz zzzz").await;
    b.press("Link account").await;
    b.expect_message("alert", INVALID_CODE).await;
    let (scroll, inner) = b.widths().await;
    assert!(scroll <= inner, "messages fit too");

    // A small desktop window: nothing scrolls sideways either, and (on the libSQL run)
    // each page, with something on it, is saved as a screenshot.
    b.press("Sign out").await;
    b.c.set_window_size(880, 860).await.expect("resize");
    for (name, path) in pages {
        match name {
            "login" => b.goto(path).await,
            "home" => b.sign_in(&app.owner_token).await,
            "tokens" => {
                b.goto(path).await;
                b.fill("Label", "laptop").await;
                b.check("api").await;
                b.press("Create token").await;
                b.new_token().await;
            }
            "admin-users" => {
                b.goto(path).await;
                b.fill("User id", "carol").await;
                b.press("Create user").await;
                b.new_token().await;
            }
            "admin-pairing" => {
                b.goto(path).await;
                b.wait_for("//tr/td[normalize-space()='tg-424242']").await;
            }
            "passkeys" => {
                b.goto(path).await;
                b.fill("Label", "work laptop").await;
                b.press("Add a passkey").await;
                b.expect_message("status", "Added the passkey").await;
            }
            "admin-oidc" => {
                b.goto(path).await;
                b.fill("Issuer URL", "https://accounts.example.com").await;
                b.fill("Subject", "248289761001").await;
                b.press("Link account").await;
                b.expect_message("status", "Linked the subject").await;
            }
            "resources" => {
                b.goto(path).await;
                b.fill("Kind", "deploy").await;
                b.fill("Reference", "billing-api production").await;
                b.check("db-password").await;
                b.check("smtp-token").await;
                b.press("Create resource").await;
                b.new_token().await;
            }
            "webhook" => {
                b.goto(path).await;
                b.fill("Endpoint URL", &hook_url).await;
                b.press("Set endpoint").await;
                b.field("New signing secret").await;
                let r = app
                    .post(
                        "/v1/me/tokens",
                        &app.owner_token,
                        json!({ "kinds": ["api"], "label": "hooked" }),
                    )
                    .await;
                assert_eq!(r.status, 201, "{}", r.text);
                let deadline = Instant::now() + PATIENCE;
                while b.count("//td[normalize-space()='delivered']").await == 0 {
                    assert!(Instant::now() < deadline, "no delivery shown");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    b.goto(path).await;
                }
            }
            "admin-service-tokens" => {
                b.goto(path).await;
                b.fill("Label", "discord bot").await;
                b.fill("Channels", "discord").await;
                b.press("Mint service token").await;
                b.new_token().await;
            }
            "link" => {
                b.press("Sign out").await;
                b.sign_in(&alice).await;
                b.goto(path).await;
                b.wait_for("//tr/td[normalize-space()='tg-100200300']")
                    .await;
                save(name, b.c.screenshot().await.expect("screenshot"));
                b.press("Sign out").await;
                b.sign_in(&app.owner_token).await;
                continue;
            }
            _ => b.goto(path).await,
        }
        b.wait_for("//h1").await;
        let (scroll, inner) = b.widths().await;
        assert!(scroll <= inner, "{path} scrolls sideways at {inner} px");
        save(name, b.c.screenshot().await.expect("screenshot"));
    }

    b.close().await;
    app.stop().await;
}

/// Served over HTTPS (`console_secure_cookies`, as behind a TLS-terminating proxy), the
/// cookies are `__Host-` prefixed and `Secure`, and the same-origin check expects
/// `https://`. Raw requests: the test browser speaks plain HTTP, where a browser would not
/// send `Secure` cookies back.
async fn behind_https_the_cookies_are_host_prefixed_and_secure(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.service.console_secure_cookies = true).await;
    let raw = raw_http();
    let host = app.base.trim_start_matches("http://").to_owned();
    let form = raw
        .get(format!("{}/console/login", app.base))
        .send()
        .await
        .unwrap();
    let set = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-ownership_login="), "{set}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    let login_cookie = set.split(';').next().unwrap().to_owned();
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let sign_in = |origin: String| {
        raw.post(format!("{}/console/login", app.base))
            .header("cookie", &login_cookie)
            .header("origin", origin)
            .form(&[
                ("csrf", csrf.as_str()),
                ("access_token", app.owner_token.as_str()),
            ])
            .send()
    };
    let res = sign_in(format!("http://{host}")).await.unwrap();
    assert_eq!(
        res.status(),
        403,
        "over HTTPS, an http:// origin is another site"
    );
    let res = sign_in(format!("https://{host}")).await.unwrap();
    assert_eq!(res.status(), 303);
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-ownership_session="))
        .expect("the session cookie")
        .to_owned();
    assert!(
        session.contains("Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    let res = raw
        .get(format!("{}/console", app.base))
        .header("cookie", session.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = raw
        .get(format!("{}/console", app.base))
        .header(
            "cookie",
            session
                .split(';')
                .next()
                .unwrap()
                .replace("__Host-ownership_session", SESSION_COOKIE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        303,
        "the unprefixed name means nothing over HTTPS"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// Accessibility: axe-core in every page
// ---------------------------------------------------------------------------------------

/// The axe-core rule tags run on every page: WCAG 2.0, 2.1 and 2.2 at levels A and AA, and
/// axe's best practices.
const AXE_TAGS: [&str; 7] = [
    "wcag2a",
    "wcag2aa",
    "wcag21a",
    "wcag21aa",
    "wcag22a",
    "wcag22aa",
    "best-practice",
];

/// axe-core's script: `$OWNERSHIP_AXE` when set (`cargo xtask test` sets it), else the
/// copy `cargo xtask` installs under `<target>/tools/axe-core/`.
fn axe_source() -> String {
    let path = std::env::var_os("OWNERSHIP_AXE")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || {
                let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
                tmp.parent()
                    .unwrap_or(tmp)
                    .join("tools/axe-core/node_modules/axe-core/axe.min.js")
            },
            PathBuf::from,
        );
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core not found at `{}` ({e}): the console's accessibility checks need the \
             npm package `axe-core` (`cargo xtask test` installs it under the target \
             directory; by hand: `npm install --prefix <target>/tools/axe-core axe-core`), \
             or OWNERSHIP_AXE pointing at its `axe.min.js`",
            path.display()
        )
    })
}

/// Runs axe-core on pages and remembers which rules ran and which pages it saw.
struct Axe {
    source: String,
    rules: std::sync::Mutex<std::collections::BTreeSet<String>>,
    pages: std::sync::Mutex<Vec<String>>,
}

impl Axe {
    fn new() -> Self {
        Self {
            source: axe_source(),
            rules: std::sync::Mutex::default(),
            pages: std::sync::Mutex::default(),
        }
    }

    /// Injects axe-core into the page the browser shows (through WebDriver, which the
    /// page's CSP does not govern) and fails on any violation of impact "serious" or
    /// "critical", naming the rule and the elements.
    async fn check(&self, b: &Browser, what: &str) {
        b.wait_for("//h1").await;
        let loaded =
            b.c.execute(
                &format!(
                    "if (typeof window.axe === 'undefined') {{ {} }}\nreturn typeof window.axe;",
                    self.source
                ),
                vec![],
            )
            .await
            .unwrap_or_else(|e| panic!("injecting axe-core into {what}: {e}"));
        assert_eq!(loaded, json!("object"), "axe-core did not load on {what}");
        let result =
            b.c.execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: { type: 'tag', values: arguments[0] },
                                     resultTypes: ['violations'] })
                   .then(r => done({
                     rules: [].concat(r.passes, r.incomplete, r.inapplicable, r.violations)
                              .map(x => x.id),
                     violations: r.violations.map(v => ({
                       id: v.id, impact: v.impact, help: v.help,
                       nodes: v.nodes.map(n => n.target.join(' ') + ': ' + (n.failureSummary || ''))
                     }))
                   }))
                   .catch(e => done({ error: String(e) }));",
                vec![json!(AXE_TAGS)],
            )
            .await
            .unwrap_or_else(|e| panic!("running axe-core on {what}: {e}"));
        assert!(
            result.get("error").is_none(),
            "axe-core failed on {what}: {}",
            result["error"]
        );
        let rules = result["rules"].as_array().expect("rules");
        assert!(!rules.is_empty(), "axe-core ran no rule on {what}");
        self.rules
            .lock()
            .unwrap()
            .extend(rules.iter().filter_map(|r| r.as_str().map(str::to_owned)));
        self.pages.lock().unwrap().push(what.to_owned());
        let violations = result["violations"].as_array().expect("violations");
        let grave: Vec<String> = violations
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                format!(
                    "- {} ({}): {}\n    {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["impact"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or("?"),
                    v["nodes"]
                        .as_array()
                        .map(|n| n
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n    "))
                        .unwrap_or_default()
                )
            })
            .collect();
        assert!(
            grave.is_empty(),
            "axe-core finds serious or critical violations on {what} ({}):\n{}",
            b.path().await,
            grave.join("\n")
        );
        for v in violations {
            eprintln!(
                "axe-core, {what}: {} ({}) {}",
                v["id"], v["impact"], v["help"]
            );
        }
    }

    /// Prints the rules that ran and the pages they ran on (the test's output).
    fn report(&self) {
        let rules = self.rules.lock().unwrap();
        let pages = self.pages.lock().unwrap();
        eprintln!(
            "axe-core ran {} rules ({}) on {} pages: {}\nrules: {}",
            rules.len(),
            AXE_TAGS.join(", "),
            pages.len(),
            pages.join("; "),
            rules.iter().cloned().collect::<Vec<_>>().join(" ")
        );
    }
}

// ---------------------------------------------------------------------------------------
// The account and admin pages of the second round, and axe-core on every page
// ---------------------------------------------------------------------------------------

/// A server with secrets, resources and loopback webhooks on, delivering quickly.
async fn spawn_app_with_secrets(backend: Backend) -> TestApp {
    spawn_app_with(backend, with_secrets).await
}

fn with_secrets(c: &mut ownership_cli::server::ServerConfig) {
    c.secrets.master_key = Some([7; 32]);
    c.service.allow_private_webhooks = true;
    c.service.webhooks.poll_interval = Duration::from_millis(50);
    c.service.webhooks.retry = ownership_core::service::RetryPolicy {
        max_attempts: 2,
        base: Duration::from_millis(100),
        max_delay: Duration::from_millis(200),
    };
}

/// A webhook receiver on a loopback port that answers every message to `/hook` with 204
/// (and to `/fail` with 500); returns the `/hook` URL and how many messages it received
/// there.
async fn webhook_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        )
        .route(
            "/fail",
            axum::routing::post(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), received)
}

/// A raw console POST with the browser's session cookie (and this origin), for the CSRF
/// refusals; returns the status.
async fn console_post(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> u16 {
    raw_http()
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("origin", &app.base)
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

impl Browser {
    /// The value of the one-time field labelled `label`, and its absence when the page
    /// (`page`) is opened again: the value is shown once and never again.
    async fn reveal_once(&self, label: &str, prefix: &str, page: &str) -> String {
        let value = self
            .field(label)
            .await
            .prop("value")
            .await
            .expect("prop")
            .expect("a value");
        assert!(value.starts_with(prefix), "{label} shows `{value}`");
        let here = page;
        self.goto(here).await;
        self.wait_for("//h1").await;
        assert_eq!(
            self.count(&format!("//label[normalize-space()={}]", quoted(label)))
                .await,
            0,
            "{label} is shown again on {here}"
        );
        assert!(
            !self.c.source().await.unwrap().contains(&value),
            "the value shown once is in {here} again"
        );
        value
    }

    /// The texts of the cells labelled `column`, top to bottom.
    async fn column(&self, column: &str) -> Vec<String> {
        let cells = self
            .c
            .find_all(Locator::XPath(&format!(
                "//td[@data-label={}]",
                quoted(column)
            )))
            .await
            .expect("find_all");
        let mut texts = Vec::with_capacity(cells.len());
        for c in cells {
            texts.push(c.text().await.expect("text").trim().to_owned());
        }
        texts
    }
}

/// Secrets, resource credentials, the webhook endpoint and its delivery log, service
/// tokens, pending pairing requests of every channel and readable audit details, in one
/// browser on one server per store; axe-core checks every console page on the way.
async fn account_and_admin_pages(backend: Backend) {
    let app = spawn_app_with_secrets(backend).await;
    let mia = app.create_user("mia", "member").await;
    let bot = service_token(&app, "telegram").await;
    pairing_code(&app, &bot, "telegram", "tg-1001").await;
    let discord = service_token(&app, "discord").await;
    pairing_code(&app, &discord, "discord", "dc-2002").await;
    let (hook_url, received) = webhook_receiver().await;
    let axe = Axe::new();
    let driver = Driver::start().await;
    let b = driver.browser(&app).await;

    // The sign-in page, plain and refusing a token.
    b.goto("/console/login").await;
    axe.check(&b, "sign-in").await;
    b.fill("Access token", "own_u_not-a-token").await;
    b.press("Sign in").await;
    b.expect_message("alert", "Invalid token").await;
    axe.check(&b, "sign-in refused").await;
    b.sign_in(&app.owner_token).await;
    axe.check(&b, "home").await;

    secrets_and_resources(&app, &b, &axe).await;
    webhook_endpoint_and_deliveries(&app, &b, &axe, &hook_url, &received).await;
    service_tokens(&app, &b, &axe).await;
    pending_requests_and_audit(&b, &axe).await;
    new_pages_refuse_forged_posts(&app, &b).await;

    // The pages of the first round, in the states that show the most.
    b.follow("Tokens").await;
    b.fill("Label", "laptop").await;
    b.check("api").await;
    b.press("Create token").await;
    b.new_token().await;
    axe.check(&b, "tokens with a new token").await;
    b.follow("Users").await;
    b.fill("User id", "noor").await;
    b.press("Create user").await;
    b.new_token().await;
    axe.check(&b, "users with a new user's token").await;
    b.goto("/console/admin/users/delete?user=noor").await;
    axe.check(&b, "delete a user").await;
    b.follow("Link a chat account").await;
    b.fill("Channel", "telegram").await;
    b.fill("Pairing code", "zzzz zzzz").await;
    b.press("Link account").await;
    b.expect_message("alert", INVALID_CODE).await;
    axe.check(&b, "link with a refused code").await;
    b.goto("/console/nowhere").await;
    axe.check(&b, "not found").await;
    b.goto("/console").await;

    // A Member: the account pages are theirs too, the admin pages are refused.
    b.press("Sign out").await;
    b.sign_in(&mia).await;
    assert!(
        !b.has_link("Service tokens").await,
        "no admin links for a Member"
    );
    assert!(!b.has_link("Pairing requests").await);
    b.follow("Secrets").await;
    b.expect_heading("Secrets").await;
    b.follow("Link a chat account").await;
    axe.check(&b, "link, empty").await;
    let cookie = format!("{SESSION_COOKIE}={}", b.session_cookie().await);
    let csrf = b.csrf().await;
    for path in ["/console/admin/service-tokens", "/console/admin/pairing"] {
        b.goto(path).await;
        assert_eq!(b.heading().await, "Not allowed", "{path}");
        b.expect_message("alert", "Only Admins and Owners may use this page.")
            .await;
        let res = raw_http()
            .get(format!("{}{path}", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "GET {path} as a Member");
    }
    axe.check(&b, "403 for a Member").await;
    let minted = console_post(
        &app,
        &cookie,
        "/console/admin/service-tokens",
        &[
            ("csrf", &csrf),
            ("form_id", "member-1"),
            ("channels", "telegram"),
        ],
    )
    .await;
    assert_eq!(
        minted, 403,
        "a Member mints no service token, CSRF token or not"
    );
    let r = app.get("/v1/me/tokens", &mia).await;
    assert_eq!(r.body["tokens"].as_array().unwrap().len(), 1, "{}", r.text);

    axe.report();
    b.close().await;
    app.stop().await;
}

async fn secrets_and_resources(app: &TestApp, b: &Browser, axe: &Axe) {
    b.follow("Secrets").await;
    b.expect_heading("Secrets").await;
    b.wait_for("//p[normalize-space()='No secret yet.']").await;
    axe.check(b, "secrets, empty").await;
    // Set, then replace; the value never comes back.
    b.fill("Name", "db-password").await;
    b.fill("Value", "first hunter2 value").await;
    b.press("Set secret").await;
    b.expect_message("status", "Stored the secret db-password.")
        .await;
    b.wait_for("//tr/td[normalize-space()='db-password']").await;
    b.fill("Name", "db-password").await;
    b.fill("Value", "second hunter2 value").await;
    b.press("Set secret").await;
    b.expect_message("status", "Replaced the value of db-password.")
        .await;
    b.fill("Name", "bad name!").await;
    b.fill("Value", "x").await;
    b.press("Set secret").await;
    b.expect_message("alert", "Invalid name").await;
    b.goto("/console/secrets").await;
    let source = b.c.source().await.unwrap();
    assert!(
        !source.contains("hunter2"),
        "a secret's value is never shown"
    );
    axe.check(b, "secrets, listed").await;
    let r = app.get("/v1/me/secrets", &app.owner_token).await;
    assert_eq!(r.body["secrets"].as_array().unwrap().len(), 1, "{}", r.text);

    // A resource credential granted the secret: its token is shown once and works.
    b.follow("Resource credentials").await;
    b.expect_heading("Resource credentials").await;
    axe.check(b, "resources, empty").await;
    b.fill("Kind", "deploy").await;
    b.fill("Reference", "ci-42").await;
    b.check("db-password").await;
    b.press("Create resource").await;
    b.wait_for("//h2[normalize-space()='Your new resource token']")
        .await;
    axe.check(b, "resources with a new token").await;
    let token = b
        .reveal_once("New token", "own_r_", "/console/resources")
        .await;
    let creds = app
        .call("GET", "/v1/resource/credentials", Some(&token), None)
        .await;
    assert_eq!(creds.status, 200, "{}", creds.text);
    assert_eq!(
        creds.body["secrets"]["db-password"], "second hunter2 value",
        "the resource reads the value set last"
    );
    b.wait_for("//tr/td[normalize-space()='ci-42']").await;
    axe.check(b, "resources, listed").await;
    b.press_in_row("ci-42", "Revoke").await;
    b.expect_message("status", "its token stopped working")
        .await;
    b.wait_for("//tr[td[normalize-space()='ci-42']]//span[normalize-space()='revoked']")
        .await;
    let creds = app
        .call("GET", "/v1/resource/credentials", Some(&token), None)
        .await;
    assert_eq!(creds.status, 403, "a revoked resource reads nothing");

    // Delete the secret.
    b.follow("Secrets").await;
    b.press_in_row("db-password", "Delete").await;
    b.expect_message("status", "Deleted the secret db-password.")
        .await;
    assert_eq!(b.count("//tr/td[normalize-space()='db-password']").await, 0);
    let r = app.get("/v1/me/secrets", &app.owner_token).await;
    assert!(
        r.body["secrets"].as_array().unwrap().is_empty(),
        "{}",
        r.text
    );
}

async fn webhook_endpoint_and_deliveries(
    app: &TestApp,
    b: &Browser,
    axe: &Axe,
    hook_url: &str,
    received: &std::sync::atomic::AtomicUsize,
) {
    b.follow("Webhook").await;
    b.expect_heading("Webhook").await;
    b.wait_for("//p[normalize-space()='No endpoint is set.']")
        .await;
    axe.check(b, "webhook, none").await;
    b.fill("Endpoint URL", "ftp://example.com/hook").await;
    b.press("Set endpoint").await;
    b.expect_message("alert", "Invalid url").await;
    b.fill("Endpoint URL", hook_url).await;
    b.press("Set endpoint").await;
    b.wait_for("//h2[normalize-space()=\"Your endpoint's signing secret\"]")
        .await;
    axe.check(b, "webhook with a new signing secret").await;
    let first = b
        .reveal_once("New signing secret", "whsec_", "/console/webhook")
        .await;
    b.wait_for(&format!(
        "//dd/code[normalize-space()={}]",
        quoted(hook_url)
    ))
    .await;

    // An event of the owner's is delivered, and the log says so.
    let minted = app
        .post(
            "/v1/me/tokens",
            &app.owner_token,
            json!({ "kinds": ["api"], "label": "hooked" }),
        )
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    let deadline = Instant::now() + PATIENCE;
    loop {
        b.goto("/console/webhook").await;
        if b.column("Status").await.iter().any(|s| s == "delivered") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no delivered row in the log within {PATIENCE:?}; the page says:\n{}",
            b.page_text().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(received.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let attempts = b.column("Attempts").await;
    let states = b.column("Status").await;
    let delivered = states.iter().position(|s| s == "delivered").unwrap();
    assert_eq!(attempts[delivered], "1", "one attempt: {attempts:?}");
    axe.check(b, "webhook with deliveries").await;

    // Rotate with a grace period: a new secret, shown once, and the old one still signs.
    b.choose("Keep the old secret signing", "For 1 day").await;
    b.press("Rotate secret").await;
    b.expect_message(
        "status",
        "the old secret keeps signing beside this one until",
    )
    .await;
    let second = b
        .reveal_once("New signing secret", "whsec_", "/console/webhook")
        .await;
    assert_ne!(first, second, "rotation gives a new secret");
    b.wait_for("//dt[normalize-space()='Previous secret']")
        .await;
    axe.check(b, "webhook during a rotation's grace").await;
    b.choose("Keep the old secret signing", "No: it stops now")
        .await;
    b.press("Rotate secret").await;
    b.expect_message("status", "the old secret stopped signing")
        .await;
    b.goto("/console/webhook").await;
    b.wait_for("//h1").await;
    assert_eq!(
        b.count("//dt[normalize-space()='Previous secret']").await,
        0
    );

    // Replaced by an endpoint that always fails: its deliveries are tried as often as the
    // retry policy allows (twice here), then marked failed.
    let failing = hook_url.replace("/hook", "/fail");
    b.fill("Endpoint URL", &failing).await;
    b.press("Set endpoint").await;
    b.reveal_once("New signing secret", "whsec_", "/console/webhook")
        .await;
    let deadline = Instant::now() + PATIENCE;
    let failed = loop {
        b.goto("/console/webhook").await;
        let states = b.column("Status").await;
        if let Some(i) = states.iter().position(|s| s == "failed") {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no failed row in the log within {PATIENCE:?}; the page says:\n{}",
            b.page_text().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(b.column("Attempts").await[failed], "2");
    assert_eq!(b.column("Last result").await[failed], "HTTP 500");
    axe.check(b, "webhook with a failed delivery").await;

    // Remove it.
    b.press("Remove endpoint").await;
    b.expect_message("status", "Removed the webhook endpoint.")
        .await;
    b.wait_for("//p[normalize-space()='No endpoint is set.']")
        .await;
    assert_eq!(
        app.get("/v1/me/webhook", &app.owner_token).await.status,
        404
    );
}

async fn service_tokens(app: &TestApp, b: &Browser, axe: &Axe) {
    b.follow("Service tokens").await;
    b.expect_heading("Service tokens").await;
    // The two minted through the API at the start are listed; the owner's own is not.
    let mut kinds = b.column("Kinds").await;
    kinds.sort();
    assert_eq!(kinds, ["channel:discord", "channel:telegram"]);
    b.press("Mint service token").await;
    b.expect_message("alert", "name at least one channel or tick verify")
        .await;
    b.fill("Label", "tg-bot").await;
    b.fill("Channels", "telegram, slack").await;
    b.check("verify").await;
    b.press("Mint service token").await;
    b.wait_for("//h2[normalize-space()='Your new service token']")
        .await;
    axe.check(b, "service tokens with a new token").await;
    let token = b
        .reveal_once("New token", "own_s_", "/console/admin/service-tokens")
        .await;
    let asked = app
        .post(
            "/v1/channels/slack/pairing-requests",
            &token,
            json!({ "external_id": "sl-3003" }),
        )
        .await;
    assert_eq!(
        asked.status, 201,
        "the new service token works: {}",
        asked.text
    );
    b.wait_for("//tr/td[normalize-space()='tg-bot']").await;
    let kinds = b.column("Kinds").await;
    assert!(
        kinds.iter().any(|k| k.contains("channel:telegram")
            && k.contains("channel:slack")
            && k.contains("verify")),
        "the new token's kinds are listed: {kinds:?}"
    );
    b.press_in_row("tg-bot", "Revoke").await;
    b.expect_message("status", "it stopped working").await;
    let refused = app
        .post(
            "/v1/channels/slack/pairing-requests",
            &token,
            json!({ "external_id": "sl-3004" }),
        )
        .await;
    assert_eq!(refused.status, 401, "a revoked service token is refused");
}

async fn pending_requests_and_audit(b: &Browser, axe: &Axe) {
    // Every channel's pending requests by default, newest first; then one channel.
    b.follow("Pairing requests").await;
    b.wait_for("//tr/td[normalize-space()='sl-3003']").await;
    assert_eq!(
        b.column("Account").await,
        ["sl-3003", "dc-2002", "tg-1001"],
        "newest first"
    );
    assert_eq!(b.column("Channel").await, ["slack", "discord", "telegram"]);
    axe.check(b, "pairing requests, all channels").await;
    b.choose("Show channel", "discord").await;
    b.press("Show").await;
    b.wait_for("//option[@selected][normalize-space()='discord']")
        .await;
    assert_eq!(b.column("Account").await, ["dc-2002"]);
    axe.check(b, "pairing requests, one channel").await;

    // Audit details are key/value pairs, not raw JSON.
    b.follow("Audit").await;
    b.wait_for("//td[@data-label='Details']//dt[normalize-space()='kinds']")
        .await;
    let details = b.column("Details").await;
    assert!(
        details.iter().all(|d| !d.contains('{') && !d.contains('"')),
        "no raw JSON in the details: {details:?}"
    );
    axe.check(b, "audit").await;
}

/// Every new form refuses a POST without this session's CSRF token or with a wrong one,
/// and changes nothing.
async fn new_pages_refuse_forged_posts(app: &TestApp, b: &Browser) {
    b.follow("Secrets").await;
    let cookie = format!("{SESSION_COOKIE}={}", b.session_cookie().await);
    let csrf = b.csrf().await;
    let forms: [(&str, Vec<(&str, &str)>); 9] = [
        ("/console/secrets", vec![("name", "forged"), ("value", "v")]),
        ("/console/secrets/delete", vec![("name", "forged")]),
        (
            "/console/resources",
            vec![("form_id", "forged-1"), ("kind", "forged")],
        ),
        ("/console/resources/revoke", vec![("id", "res_x")]),
        (
            "/console/webhook",
            vec![("form_id", "forged-2"), ("url", "http://127.0.0.1:9/x")],
        ),
        (
            "/console/webhook/rotate",
            vec![("form_id", "forged-3"), ("grace", "0")],
        ),
        ("/console/webhook/delete", vec![]),
        (
            "/console/admin/service-tokens",
            vec![("form_id", "forged-4"), ("channels", "forged")],
        ),
        (
            "/console/admin/service-tokens/revoke",
            vec![("id", "tok_x")],
        ),
    ];
    for (path, fields) in &forms {
        for token in [None, Some("not-the-token")] {
            let mut form = fields.clone();
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            assert_eq!(
                console_post(app, &cookie, path, &form).await,
                403,
                "POST {path} with CSRF token {token:?}"
            );
        }
    }
    let secrets = app.get("/v1/me/secrets", &app.owner_token).await;
    assert!(secrets.body["secrets"].as_array().unwrap().is_empty());
    let resources = app.get("/v1/me/resources", &app.owner_token).await;
    assert_eq!(resources.body["resources"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/v1/me/webhook", &app.owner_token).await.status,
        404
    );
    let tokens = app.get("/v1/me/tokens", &app.owner_token).await;
    assert!(
        !tokens.text.contains("forged"),
        "no service token was minted"
    );
    // The control: the same request with the page's token works.
    let control = console_post(
        app,
        &cookie,
        "/console/secrets",
        &[("csrf", &csrf), ("name", "control"), ("value", "v")],
    )
    .await;
    assert_eq!(control, 303, "the page's own token is accepted");
    let secrets = app.get("/v1/me/secrets", &app.owner_token).await;
    assert_eq!(secrets.body["secrets"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Passkeys, with chromedriver's WebAuthn virtual authenticator
// ---------------------------------------------------------------------------------------

/// A command of the WebDriver WebAuthn extension (`/session/{id}/webauthn/…`), which
/// chromedriver implements and fantoccini sends as a custom command.
#[derive(Debug)]
struct WebAuthnCmd {
    method: axum::http::Method,
    path: String,
    body: Option<Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for WebAuthnCmd {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

impl Browser {
    /// Adds a virtual platform authenticator (CTAP2, internal transport, resident keys,
    /// user verification that always succeeds); returns its id.
    async fn add_virtual_authenticator(&self) -> String {
        let id = self
            .c
            .issue_cmd(WebAuthnCmd {
                method: axum::http::Method::POST,
                path: "authenticator".into(),
                body: Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                    "automaticPresenceSimulation": true,
                })),
            })
            .await
            .unwrap_or_else(|e| panic!("chromedriver refused a virtual authenticator: {e}"));
        id.as_str().expect("an authenticator id").to_owned()
    }

    /// The credentials the virtual authenticator `id` holds.
    async fn authenticator_credentials(&self, id: &str) -> Vec<Value> {
        let v = self
            .c
            .issue_cmd(WebAuthnCmd {
                method: axum::http::Method::GET,
                path: format!("authenticator/{id}/credentials"),
                body: None,
            })
            .await
            .expect("the authenticator's credentials");
        v.as_array().expect("a list").clone()
    }
}

/// The audit actions of the first Owner's own events.
async fn own_actions(app: &TestApp) -> Vec<String> {
    let r = app.get("/v1/me/audit?limit=200", &app.owner_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect()
}

/// Passkeys end to end in Chromium with a virtual authenticator: a signed-in user adds a
/// passkey (a discoverable credential the authenticator keeps), signs out, signs in with
/// it (no token), and removes it from that session, which ends; the passkey, still held
/// by the authenticator, no longer signs in. The script is served by us and loaded only
/// by the two pages that use it; axe-core passes on both.
async fn passkeys_register_sign_in_and_remove(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // WebAuthn needs a secure context and a domain for its relying-party id: `localhost`
    // is both, over plain HTTP.
    let origin = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let app = spawn_app_on(backend, listener, move |config| {
        config.service.passkeys = Some(
            ownership_http::console::PasskeySettings::new("localhost", &origin)
                .expect("passkey settings"),
        );
    })
    .await;
    let driver = Driver::start().await;
    let mut b = driver.browser(&app).await;
    b.base = app.base.replace("127.0.0.1", "localhost");
    let axe = Axe::new();
    let authenticator = b.add_virtual_authenticator().await;

    // The script is ours, from this origin, under the console's CSP.
    let raw = raw_http();
    let js = raw
        .get(format!("{}/console/assets/passkey.js", app.base))
        .send()
        .await
        .expect("script");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        js.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );

    passkey_sign_in_refusals(&app).await;

    b.sign_in(&app.owner_token).await;
    assert_eq!(b.count("//script").await, 0, "the home page has no script");
    b.follow("Passkeys").await;
    b.expect_heading("Passkeys").await;
    b.wait_text("//p[normalize-space()='No passkey yet.']")
        .await;
    assert_eq!(
        b.count("//script[@src='/console/assets/passkey.js']").await,
        1,
        "the passkeys page loads our script"
    );
    assert_eq!(b.count("//script[not(@src)]").await, 0, "no inline script");
    axe.check(&b, "the passkeys page, empty").await;

    b.fill("Label", "test laptop").await;
    b.press("Add a passkey").await;
    b.expect_message("status", "Added the passkey “test laptop”")
        .await;
    b.wait_text("//tr[td[normalize-space()='test laptop']]")
        .await;
    assert!(
        b.wait_text("//tr[td[normalize-space()='test laptop']]")
            .await
            .contains("Never"),
        "not used yet"
    );
    let held = b.authenticator_credentials(&authenticator).await;
    assert_eq!(held.len(), 1, "the authenticator keeps one credential");
    assert_eq!(
        held[0]["isResidentCredential"],
        json!(true),
        "a discoverable credential"
    );
    axe.check(&b, "the passkeys page, one passkey").await;

    // Sign out, then back in with the passkey alone.
    b.press("Sign out").await;
    b.wait_for("//label[normalize-space()='Access token']")
        .await;
    assert!(b.is_on_sign_in_page().await);
    axe.check(&b, "the sign-in page with passkeys").await;
    b.press("Sign in with a passkey").await;
    b.wait_for("//button[normalize-space()='Sign out']").await;
    assert_eq!(b.path().await, "/console");
    let home = b.page_text().await;
    assert!(
        home.contains("You are signed in as owner") && home.contains("with a passkey"),
        "{home}"
    );
    // Such a session holds no token, so it mints none, and says why.
    let before = token_count(&app).await;
    b.follow("Tokens").await;
    // No form: the session holds no token of its own to mint with, and says so.
    b.wait_text("//p[contains(normalize-space(), 'sign in with a token to mint')]")
        .await;
    assert_eq!(
        b.count("//button[normalize-space()='Create token']").await,
        0
    );
    assert_eq!(token_count(&app).await, before, "nothing minted");
    b.follow("Passkeys").await;
    let row = b
        .wait_text("//tr[td[normalize-space()='test laptop']]")
        .await;
    assert!(!row.contains("Never"), "the sign-in is recorded: {row}");
    let actions = own_actions(&app).await;
    for action in ["passkey.registered", "passkey.signed_in"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }

    // Removing it from the session it started ends that session.
    b.press_in_row("test laptop", "Remove").await;
    b.wait_for("//label[normalize-space()='Access token']")
        .await;
    assert!(
        b.is_on_sign_in_page().await,
        "the session stood on the removed passkey"
    );
    assert!(
        own_actions(&app)
            .await
            .iter()
            .any(|a| a == "passkey.removed")
    );

    // The authenticator still holds the credential, but it no longer signs in.
    assert_eq!(b.authenticator_credentials(&authenticator).await.len(), 1);
    b.press("Sign in with a passkey").await;
    b.expect_message("alert", "That passkey did not sign you in.")
        .await;
    assert!(b.is_on_sign_in_page().await);
    assert!(
        b.c.get_named_cookie(SESSION_COOKIE).await.is_err(),
        "no session was started"
    );
    axe.check(&b, "the sign-in page after a refused passkey")
        .await;

    // With the token again: nothing left on the passkeys page.
    b.sign_in(&app.owner_token).await;
    b.goto("/console/passkeys").await;
    b.wait_text("//p[normalize-space()='No passkey yet.']")
        .await;
    b.close().await;
    app.stop().await;
}

/// The sign-in ceremony's endpoints, raw: without the sign-in page's CSRF value they
/// refuse (403); with it, options come with a fresh ceremony id each time, and an answer
/// that does not verify, or names a ceremony that is unknown or already used, signs
/// nobody in (401 with one message, never a 5xx).
async fn passkey_sign_in_refusals(app: &TestApp) {
    let raw = raw_http();
    let (cookie, csrf) = sign_in_form(&raw, app).await;
    let post = |path: &'static str, form: Vec<(&'static str, String)>, cookie: Option<String>| {
        let raw = raw.clone();
        let url = format!("{}{path}", app.base);
        async move {
            let mut req = raw.post(url).form(&form);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let res = req.send().await.expect("post");
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        }
    };
    let (status, _) = post(
        "/console/passkeys/login/options",
        vec![("csrf", csrf.clone())],
        None,
    )
    .await;
    assert_eq!(status, 403, "no CSRF cookie");
    let options = || {
        post(
            "/console/passkeys/login/options",
            vec![("csrf", csrf.clone())],
            Some(cookie.clone()),
        )
    };
    let (status, first) = options().await;
    assert_eq!(status, 200, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    let ceremony = first["ceremony"].as_str().unwrap().to_owned();
    assert_eq!(
        first["options"]["publicKey"]["userVerification"],
        json!("required")
    );
    let (_, second) = options().await;
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_ne!(
        second["ceremony"], first["ceremony"],
        "a ceremony per request"
    );
    assert_ne!(
        second["options"]["publicKey"]["challenge"],
        first["options"]["publicKey"]["challenge"]
    );
    for (what, ceremony, credential) in [
        (
            "a forged answer",
            ceremony.clone(),
            "{\"id\":\"x\"}".to_owned(),
        ),
        ("the same ceremony again", ceremony, "{}".to_owned()),
        ("an unknown ceremony", "nope".to_owned(), "{}".to_owned()),
    ] {
        let (status, body) = post(
            "/console/passkeys/login",
            vec![
                ("csrf", csrf.clone()),
                ("ceremony", ceremony),
                ("credential", credential),
            ],
            Some(cookie.clone()),
        )
        .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            body.contains("That passkey did not sign you in."),
            "{what}: {body}"
        );
    }
}
// Sign-in with an OpenID Connect provider
// ---------------------------------------------------------------------------------------

/// The folder holding oidc-provider's packages: `$OWNERSHIP_OIDC_PROVIDER` (`cargo xtask
/// test` sets it), else the copy `cargo xtask` installs under `<target>/tools/`.
fn oidc_provider_modules() -> PathBuf {
    std::env::var_os("OWNERSHIP_OIDC_PROVIDER")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || {
                let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
                tmp.parent()
                    .unwrap_or(tmp)
                    .join("tools/oidc-provider/node_modules")
            },
            PathBuf::from,
        )
}

/// The provider's name on the sign-in page.
const PROVIDER_NAME: &str = "Test Identity";

impl Browser {
    /// Starts a sign-in with the provider and logs in at its development form as `login`.
    async fn sign_in_at_provider(&self, login: &str) {
        self.goto("/console/login").await;
        self.follow(&format!("Sign in with {PROVIDER_NAME}")).await;
        let name = self.wait_for("//input[@name='login']").await;
        name.send_keys(login).await.expect("type the login");
        self.c
            .find(Locator::XPath("//input[@name='password']"))
            .await
            .expect("password field")
            .send_keys("any password")
            .await
            .expect("type the password");
        self.c
            .find(Locator::XPath("//button[@type='submit']"))
            .await
            .expect("the provider's sign-in button")
            .click()
            .await
            .expect("submit");
    }

    /// Waits for the refusal page after a provider sign-in, with `text` in its message.
    async fn expect_refusal(&self, text: &str) {
        let h = self
            .wait_text("//h1[normalize-space()='Sign-in refused']")
            .await;
        assert_eq!(h, "Sign-in refused");
        let body = self.page_text().await;
        assert!(
            body.contains(text),
            "refusal page says `{body}`, not `{text}`"
        );
        self.goto("/console").await;
        assert!(self.is_on_sign_in_page().await, "nobody was signed in");
    }
}

/// Links `subject` at `issuer` to `user` with the operator command.
fn link_oidc(app: &TestApp, user: &str, issuer: &str, subject: &str) {
    let (code, out) = ownership_tests::serve::run_to_end(ownership_tests::serve::operator_command(
        &[
            "users",
            "link-oidc",
            user,
            "--issuer",
            issuer,
            "--subject",
            subject,
        ],
        &app.database_url,
    ));
    assert_eq!(code, Some(0), "users link-oidc: {out}");
}

/// A cookie `name=value` from a response's `Set-Cookie` headers.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// Drives the provider over plain HTTP (no browser) until it redirects back to the
/// console: returns the console's flow cookie and the callback URL with its code.
async fn code_over_http(app: &TestApp, login: &str) -> (String, String) {
    let http = raw_http();
    let start = http
        .get(format!("{}/console/oidc/start", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 303);
    let flow = set_cookie(&start, "ownership_oidc").expect("the flow cookie");
    let mut url = start.headers()["location"].to_str().unwrap().to_owned();
    let mut jar: Vec<String> = Vec::new();
    let mut form_posted = false;
    for _ in 0..10 {
        if url.starts_with(&app.base) {
            return (flow, url);
        }
        let r = http
            .get(&url)
            .header("cookie", jar.join("; "))
            .send()
            .await
            .unwrap();
        for c in r.headers().get_all("set-cookie").iter() {
            let c = c.to_str().unwrap().split(';').next().unwrap().to_owned();
            let name = c.split('=').next().unwrap().to_owned();
            jar.retain(|k| !k.starts_with(&format!("{name}=")));
            jar.push(c);
        }
        let base = reqwest::Url::parse(&url).unwrap();
        if r.status().is_redirection() {
            url = base
                .join(r.headers()["location"].to_str().unwrap())
                .unwrap()
                .to_string();
            continue;
        }
        assert!(
            !form_posted,
            "the provider showed a second form: {}",
            r.text().await.unwrap()
        );
        let page = r.text().await.unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the provider's login form")
            .to_owned();
        let r = http
            .post(base.join(&action).unwrap())
            .header("cookie", jar.join("; "))
            .form(&[("prompt", "login"), ("login", login), ("password", "x")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "login form: {}", r.status());
        form_posted = true;
        url = base
            .join(r.headers()["location"].to_str().unwrap())
            .unwrap()
            .to_string();
    }
    panic!("the provider never sent the browser back to the console");
}

async fn sign_in_with_an_identity_provider(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let provider = OidcProvider::start(
        &oidc_provider_modules(),
        &format!("{base}/console/oidc/callback"),
    );
    let (issuer, secret) = (provider.issuer.clone(), provider.client_secret.clone());
    let app = spawn_app_on(backend, listener, move |c| {
        c.service.oidc = Some(ownership_http::console::OidcConfig {
            issuer,
            client_id: CLIENT_ID.to_owned(),
            client_secret: Some(secret),
            display_name: PROVIDER_NAME.to_owned(),
            redirect_base: base,
            allowed_emails: ownership_core::oidc::AllowList::new([(
                "bob@example.com",
                ownership_core::OwnerId::parse("bob").unwrap(),
            )])
            .unwrap(),
        });
    })
    .await;
    app.create_user("alice", "member").await;
    app.create_user("bob", "member").await;
    link_oidc(&app, "alice", &provider.issuer, "alice");
    let driver = Driver::start().await;
    let axe = Axe::new();

    // A linked subject lands signed in as its user.
    let b = driver.browser(&app).await;
    b.goto("/console/login").await;
    axe.check(&b, "sign-in page with a provider").await;
    b.sign_in_at_provider("alice").await;
    b.wait_for("//button[normalize-space()='Sign out']").await;
    assert_eq!(b.path().await, "/console");
    let home = b.page_text().await;
    assert!(home.contains("alice"), "home shows the user: {home}");
    assert!(home.contains("your identity provider"), "{home}");
    axe.check(&b, "home after a provider sign-in").await;
    b.follow("Audit").await;
    b.wait_for("//td[contains(normalize-space(), 'session.started')]")
        .await;
    b.close().await;

    // An unlinked subject is refused with a clear page.
    let b = driver.browser(&app).await;
    b.sign_in_at_provider("stranger").await;
    b.wait_text("//h1[normalize-space()='Sign-in refused']")
        .await;
    axe.check(&b, "provider sign-in refused").await;
    b.expect_refusal("not linked to a user here").await;
    b.close().await;

    // A verified, allow-listed email links on first sign-in; the same email unverified
    // links nothing.
    let b = driver.browser(&app).await;
    b.sign_in_at_provider("mallory").await;
    b.expect_refusal("not linked to a user here").await;
    b.close().await;
    let b = driver.browser(&app).await;
    b.sign_in_at_provider("bob").await;
    b.wait_for("//button[normalize-space()='Sign out']").await;
    assert!(b.page_text().await.contains("bob"));
    b.close().await;

    // Each bad ID token the provider can be made to send is refused.
    for mode in [
        "wrong-nonce",
        "wrong-issuer",
        "wrong-audience",
        "expired",
        "bad-signature",
    ] {
        provider.set_mode(mode).await;
        let b = driver.browser(&app).await;
        b.sign_in_at_provider("alice").await;
        b.expect_refusal("could not be verified").await;
        b.close().await;
    }
    provider.set_mode("normal").await;

    // Over plain HTTP: a tampered `state` and a replayed code are refused.
    let http = raw_http();
    let (flow, callback) = code_over_http(&app, "alice").await;
    let tampered = callback.replace("state=", "state=x");
    let r = http
        .get(&tampered)
        .header("cookie", &flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "a tampered state");
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("not started from this browser")
    );
    let with_flow = async |url: &str| http.get(url).header("cookie", &flow).send().await.unwrap();
    let r = with_flow(&callback).await;
    assert_eq!(
        r.status().as_u16(),
        200,
        "the first use of the code signs in"
    );
    assert!(set_cookie(&r, SESSION_COOKIE).is_some_and(|c| c.len() > SESSION_COOKIE.len() + 1));
    let r = with_flow(&callback).await;
    assert_eq!(
        r.status().as_u16(),
        403,
        "a replayed code is refused (by the provider, even with the flow cookie put back)"
    );
    assert!(set_cookie(&r, SESSION_COOKIE).is_none());
    let r = http.get(&callback).send().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "and without the flow cookie, before the provider"
    );

    // Unlinking ends the user's provider sessions.
    let b = driver.browser(&app).await;
    b.sign_in_at_provider("alice").await;
    b.wait_for("//button[normalize-space()='Sign out']").await;
    let (code, out) = ownership_tests::serve::run_to_end(ownership_tests::serve::operator_command(
        &[
            "users",
            "unlink-oidc",
            "alice",
            "--issuer",
            &provider.issuer,
            "--subject",
            "alice",
        ],
        &app.database_url,
    ));
    assert_eq!(code, Some(0), "users unlink-oidc: {out}");
    b.goto("/console").await;
    assert!(b.is_on_sign_in_page().await, "unlinking ended the session");
    b.close().await;

    axe.report();
    app.stop().await;
}

/// The actions of everyone's newest audit events, as an Owner reads them.
async fn all_actions(app: &TestApp) -> Vec<String> {
    let r = app.get("/v1/admin/audit?limit=200", &app.owner_token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect()
}

/// An Owner links an identity-provider account `(issuer, sub)` to a Member from the
/// console's users page, sees it listed and unlinks it, each audited by the use case; a
/// malformed issuer and a subject linked already are refused with a message; forged
/// posts (no or a wrong CSRF token) change nothing; an Admin gets the 403 page on an
/// Owner's accounts (the linking rule) and a Member on the page itself. axe-core passes
/// on every state.
async fn admin_links_an_identity_provider_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", "member").await;
    let bob = app.create_user("bob", "admin").await;
    app.create_user("olga", "owner").await;
    let axe = Axe::new();
    let driver = Driver::start().await;
    let b = driver.browser(&app).await;
    b.sign_in(&app.owner_token).await;

    b.follow("Users").await;
    b.press_in_row("alice", "Provider accounts").await;
    b.expect_heading("Identity-provider accounts of alice")
        .await;
    b.wait_for("//p[normalize-space()='No identity-provider account is linked to alice.']")
        .await;
    axe.check(&b, "provider accounts, empty").await;

    // A plain-http issuer off loopback is refused, naming the field; nothing is linked.
    b.fill("Issuer URL", "http://idp.example").await;
    b.fill("Subject", "248289761001").await;
    b.press("Link account").await;
    b.expect_message("alert", "Invalid issuer").await;
    assert_eq!(b.count("//td[@data-label='Subject']").await, 0);
    axe.check(&b, "provider accounts, a refused issuer").await;

    // Link, listed with its issuer; the same subject again is a conflict.
    b.fill("Issuer URL", "https://idp.example").await;
    b.fill("Subject", "248289761001").await;
    b.press("Link account").await;
    b.expect_message("status", "Linked the subject 248289761001")
        .await;
    assert_eq!(b.column("Subject").await, ["248289761001"]);
    assert_eq!(b.column("Issuer").await, ["https://idp.example"]);
    axe.check(&b, "provider accounts, one linked").await;
    b.fill("Issuer URL", "https://idp.example").await;
    b.fill("Subject", "248289761001").await;
    b.press("Link account").await;
    b.expect_message("alert", "linked already").await;
    assert!(all_actions(&app).await.contains(&"oidc.linked".to_owned()));

    // Forged posts: without the session's CSRF token nothing is linked or unlinked.
    let cookie = format!("{SESSION_COOKIE}={}", b.session_cookie().await);
    for (path, subject) in [
        ("/console/admin/users/oidc", "forged"),
        ("/console/admin/users/oidc/unlink", "248289761001"),
    ] {
        for token in [None, Some("not-the-token")] {
            let mut form = vec![
                ("user", "alice"),
                ("issuer", "https://idp.example"),
                ("subject", subject),
            ];
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            assert_eq!(
                console_post(&app, &cookie, path, &form).await,
                403,
                "POST {path} with CSRF token {token:?}"
            );
        }
    }
    b.goto("/console/admin/users/oidc?user=alice").await;
    assert_eq!(b.column("Subject").await, ["248289761001"]);

    // Unlink: the list is empty again, and the use case audited it.
    b.press_in_row("248289761001", "Unlink").await;
    b.expect_message("status", "Unlinked the subject 248289761001")
        .await;
    b.wait_for("//p[normalize-space()='No identity-provider account is linked to alice.']")
        .await;
    axe.check(&b, "provider accounts, unlinked").await;
    assert!(
        all_actions(&app)
            .await
            .contains(&"oidc.unlinked".to_owned())
    );
    // A user that does not exist is the not-found page.
    b.goto("/console/admin/users/oidc?user=nobody").await;
    b.expect_heading("Not found").await;
    b.goto("/console").await;
    b.press("Sign out").await;

    // An Admin manages Members and themself, not an Owner: the 403 page says the rule.
    b.sign_in(&bob).await;
    b.goto("/console/admin/users/oidc?user=olga").await;
    b.expect_heading("Not allowed").await;
    b.expect_message("alert", "Only an Owner may manage Admins and Owners")
        .await;
    axe.check(&b, "provider accounts, refused to an Admin")
        .await;
    b.goto("/console/admin/users/oidc?user=bob").await;
    b.expect_heading("Identity-provider accounts of bob").await;
    b.press("Sign out").await;

    // A Member: the page and its forms are refused (403), CSRF token or not.
    b.sign_in(&alice).await;
    let cookie = format!("{SESSION_COOKIE}={}", b.session_cookie().await);
    let csrf_member = b.csrf().await;
    b.goto("/console/admin/users/oidc?user=alice").await;
    b.expect_heading("Not allowed").await;
    let res = raw_http()
        .get(format!("{}/console/admin/users/oidc?user=alice", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "GET as a Member");
    let linked = console_post(
        &app,
        &cookie,
        "/console/admin/users/oidc",
        &[
            ("csrf", &csrf_member),
            ("user", "alice"),
            ("issuer", "https://idp.example"),
            ("subject", "by-a-member"),
        ],
    )
    .await;
    assert_eq!(linked, 403, "a Member links nothing, CSRF token or not");
    let actions = all_actions(&app).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "oidc.linked").count(),
        1,
        "one link in all: {actions:?}"
    );

    axe.report();
    b.close().await;
    app.stop().await;
}
