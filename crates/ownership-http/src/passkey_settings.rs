//! Where the console accepts passkeys: the WebAuthn relying party's id and origin, as the
//! operator configured them ([`crate::ServiceConfig::passkeys`]), checked once when they
//! are read.

use std::time::Duration;

use url::Url;
use webauthn_rs::prelude::{Webauthn, WebauthnBuilder};

/// How long the browser is told a ceremony may take.
pub(crate) const CEREMONY_TIMEOUT: Duration = Duration::from_secs(120);

/// Where passkeys are accepted: the relying-party id (a domain, the origin's host or a
/// parent of it) and the origin the browser shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySettings {
    rp_id: String,
    origin: Url,
}

impl PasskeySettings {
    /// Settings for `rp_id` and `origin` (`https://…`, or `http://localhost…`), refused
    /// with a sentence when WebAuthn would not accept them together.
    pub fn new(rp_id: &str, origin: &str) -> Result<Self, String> {
        let origin = Url::parse(origin)
            .map_err(|e| format!("the passkey origin `{origin}` is not a URL: {e}"))?;
        let settings = Self {
            rp_id: rp_id.trim().to_owned(),
            origin,
        };
        settings.webauthn()?;
        Ok(settings)
    }

    /// The relying-party id.
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// The origin.
    pub fn origin(&self) -> &Url {
        &self.origin
    }

    pub(crate) fn webauthn(&self) -> Result<Webauthn, String> {
        WebauthnBuilder::new(&self.rp_id, &self.origin)
            .and_then(|b| b.rp_name("ownership").timeout(CEREMONY_TIMEOUT).build())
            .map_err(|e| {
                format!(
                    "passkeys cannot use the relying-party id `{}` with the origin `{}` ({e}): \
                     the id must be the origin's host or a domain it is under",
                    self.rp_id, self.origin
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_need_an_id_the_origin_is_under() {
        assert!(PasskeySettings::new("localhost", "http://localhost:8080").is_ok());
        assert!(PasskeySettings::new("example.com", "https://auth.example.com").is_ok());
        assert!(PasskeySettings::new("example.org", "https://auth.example.com").is_err());
        assert!(PasskeySettings::new("example.com", "not a url").is_err());
    }
}
