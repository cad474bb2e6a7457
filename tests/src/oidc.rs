//! A real OpenID Connect provider for the console's sign-in tests: panva's oidc-provider
//! (npm), run with node from `tests/oidc/provider.mjs` on a loopback port, and killed when
//! dropped. `cargo xtask test` installs the package (`OWNERSHIP_OIDC_PROVIDER` names the
//! `node_modules` folder it is in); node is `$OWNERSHIP_NODE` or `/usr/bin/node`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The client id the provider registers for the console.
pub const CLIENT_ID: &str = "ownership-console";

/// A running provider.
pub struct OidcProvider {
    child: Child,
    /// `http://localhost:PORT`.
    pub issuer: String,
    /// The console's client secret at this provider.
    pub client_secret: String,
}

impl OidcProvider {
    /// Starts the provider, with the console's client registered for `redirect_uri`;
    /// `modules` is the folder holding its `node_modules` packages.
    pub fn start(modules: &Path, redirect_uri: &str) -> Self {
        let node = std::env::var_os("OWNERSHIP_NODE")
            .filter(|n| !n.is_empty())
            .map_or_else(|| PathBuf::from("/usr/bin/node"), PathBuf::from);
        assert!(
            node.exists(),
            "node not found at `{}`: the OpenID Connect tests run panva's oidc-provider \
             with node (`cargo xtask test` installs Debian's `nodejs`), or set OWNERSHIP_NODE",
            node.display()
        );
        assert!(
            modules.join("oidc-provider/package.json").is_file(),
            "oidc-provider not found in `{}`: `cargo xtask test` installs it under the target \
             directory (by hand: `npm install --prefix <target>/tools/oidc-provider \
             oidc-provider`), or set OWNERSHIP_OIDC_PROVIDER to its node_modules folder",
            modules.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc/provider.mjs");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut secret = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .expect("random");
        let client_secret = hex::encode(secret);
        let mut child = Command::new(&node)
            .arg(&script)
            .arg(modules)
            .arg(port.to_string())
            .arg(&client_secret)
            .arg(redirect_uri)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", node.display()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("ready ") {
                    let _ = tx.send(issuer.to_owned());
                }
            }
        });
        let issuer = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("oidc-provider did not start within 30 s"));
        Self {
            child,
            issuer,
            client_secret,
        }
    }

    /// Makes the token endpoint misbehave (`wrong-nonce`, `wrong-issuer`,
    /// `wrong-audience`, `expired`, `bad-signature`) or behave (`normal`).
    pub async fn set_mode(&self, mode: &str) {
        let r = reqwest::Client::new()
            .get(format!("{}/__test/mode/{mode}", self.issuer))
            .send()
            .await
            .expect("the provider answers");
        assert!(r.status().is_success(), "mode {mode}: {}", r.status());
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
