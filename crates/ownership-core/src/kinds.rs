//! Token kinds: what a token may be used for, independent of its owner's role.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::ChannelName;

/// One use a token is allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TokenKind {
    /// Account and token management, and admin routes when the role allows.
    Manage,
    /// Ordinary use by the owner's programs.
    Api,
    /// A channel adapter for this one channel.
    Channel(ChannelName),
    /// May call the token-verification endpoint.
    Verify,
}

impl TokenKind {
    /// Parses `manage`, `api`, `verify` or `channel:<name>` (case-insensitive).
    pub fn parse(raw: &str) -> Result<Self> {
        let lower = raw.to_ascii_lowercase();
        match lower.as_str() {
            "manage" => Ok(Self::Manage),
            "api" => Ok(Self::Api),
            "verify" => Ok(Self::Verify),
            other => match other.strip_prefix("channel:") {
                Some(name) => ChannelName::parse(name).map(Self::Channel).map_err(|_| {
                    Error::invalid(
                        "kinds",
                        "`channel:` must be followed by a valid channel name",
                    )
                }),
                None => Err(Error::invalid(
                    "kinds",
                    "expected `manage`, `api`, `verify` or `channel:<name>`",
                )),
            },
        }
    }

    /// Whether this kind belongs on a service token (issued by an Admin or Owner for a
    /// program rather than a person).
    pub fn is_service(&self) -> bool {
        matches!(self, Self::Channel(_) | Self::Verify)
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manage => f.write_str("manage"),
            Self::Api => f.write_str("api"),
            Self::Verify => f.write_str("verify"),
            Self::Channel(c) => write!(f, "channel:{c}"),
        }
    }
}
impl FromStr for TokenKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}
impl TryFrom<String> for TokenKind {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}
impl From<TokenKind> for String {
    fn from(k: TokenKind) -> String {
        k.to_string()
    }
}

/// A non-empty set of kinds. Immutable and shared: a clone (one per authenticated
/// request) copies a pointer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<TokenKind>", into = "Vec<TokenKind>")]
pub struct TokenKinds(Arc<BTreeSet<TokenKind>>);

impl TokenKinds {
    /// Builds a set; refuses an empty one.
    pub fn new(kinds: impl IntoIterator<Item = TokenKind>) -> Result<Self> {
        let set: BTreeSet<_> = kinds.into_iter().collect();
        if set.is_empty() {
            return Err(Error::invalid("kinds", "at least one kind is required"));
        }
        Ok(Self(Arc::new(set)))
    }

    /// `manage` + `api`: the kinds of a user's first token.
    pub fn manage_api() -> Self {
        Self(Arc::new(
            [TokenKind::Manage, TokenKind::Api].into_iter().collect(),
        ))
    }

    /// Parses a comma-separated list (`manage,api`), as stored and as typed on a command line.
    pub fn parse_csv(raw: &str) -> Result<Self> {
        Self::new(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(TokenKind::parse)
                .collect::<Result<Vec<_>>>()?,
        )
    }

    /// The comma-separated form, sorted.
    pub fn to_csv(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether the set holds `kind`.
    pub fn contains(&self, kind: &TokenKind) -> bool {
        self.0.contains(kind)
    }

    /// Whether every kind here is also in `other`.
    pub fn is_subset(&self, other: &TokenKinds) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The kinds, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &TokenKind> {
        self.0.iter()
    }

    /// Whether any kind is a service kind (`channel:*`, `verify`).
    pub fn has_service_kind(&self) -> bool {
        self.0.iter().any(TokenKind::is_service)
    }
}

impl TryFrom<Vec<TokenKind>> for TokenKinds {
    type Error = Error;
    fn try_from(v: Vec<TokenKind>) -> Result<Self> {
        Self::new(v)
    }
}
impl From<TokenKinds> for Vec<TokenKind> {
    fn from(k: TokenKinds) -> Self {
        k.0.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        assert_eq!(
            TokenKind::parse("Channel:Telegram")
                .ok()
                .map(|k| k.to_string()),
            Some("channel:telegram".into())
        );
        assert!(TokenKind::parse("channel:").is_err());
        assert!(TokenKind::parse("root").is_err());
        let set = TokenKinds::parse_csv("api, manage").unwrap();
        assert_eq!(set.to_csv(), "manage,api");
        assert!(TokenKinds::parse_csv("").is_err());
        assert!(serde_json::from_str::<TokenKinds>("[]").is_err());
        assert!(serde_json::from_str::<TokenKinds>("[\"api\",\"channel:slack\"]").is_ok());
    }
}
