//! Token kinds: what a token may be used for, independent of its owner's role.

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

/// A non-empty set of kinds, iterated in [`TokenKind`]'s order (`manage`, `api`, the
/// channels by name, `verify`).
///
/// Held as flags for the three plain kinds and a shared, sorted list of channels (absent
/// for the usual sets), so a clone, one per authenticated request, copies a byte and at
/// most one pointer, and a set read from the store allocates nothing unless it names a
/// channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<TokenKind>", into = "Vec<TokenKind>")]
pub struct TokenKinds {
    /// [`MANAGE`], [`API`] and [`VERIFY`] bits.
    flags: u8,
    /// The `channel:*` kinds (only those), sorted and distinct; `None` when there are none.
    channels: Option<Arc<[TokenKind]>>,
}

const MANAGE: u8 = 1;
const API: u8 = 2;
const VERIFY: u8 = 4;

impl TokenKinds {
    /// Builds a set; refuses an empty one.
    pub fn new(kinds: impl IntoIterator<Item = TokenKind>) -> Result<Self> {
        let mut flags = 0;
        let mut channels = Vec::new();
        for kind in kinds {
            match kind {
                TokenKind::Manage => flags |= MANAGE,
                TokenKind::Api => flags |= API,
                TokenKind::Verify => flags |= VERIFY,
                channel @ TokenKind::Channel(_) => channels.push(channel),
            }
        }
        if flags == 0 && channels.is_empty() {
            return Err(Error::invalid("kinds", "at least one kind is required"));
        }
        channels.sort_unstable();
        channels.dedup();
        Ok(Self {
            flags,
            channels: (!channels.is_empty()).then(|| channels.into()),
        })
    }

    /// `manage` + `api`: the kinds of a user's first token.
    pub fn manage_api() -> Self {
        Self {
            flags: MANAGE | API,
            channels: None,
        }
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
        self.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether the set holds `kind`.
    pub fn contains(&self, kind: &TokenKind) -> bool {
        match kind {
            TokenKind::Manage => self.flags & MANAGE != 0,
            TokenKind::Api => self.flags & API != 0,
            TokenKind::Verify => self.flags & VERIFY != 0,
            channel @ TokenKind::Channel(_) => self.channels().binary_search(channel).is_ok(),
        }
    }

    /// Whether every kind here is also in `other`.
    pub fn is_subset(&self, other: &TokenKinds) -> bool {
        self.flags & !other.flags == 0
            && self
                .channels()
                .iter()
                .all(|c| other.channels().binary_search(c).is_ok())
    }

    /// The kinds, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &TokenKind> {
        const PLAIN: [(u8, TokenKind); 2] = [(MANAGE, TokenKind::Manage), (API, TokenKind::Api)];
        let flags = self.flags;
        let plain = PLAIN
            .iter()
            .filter(move |(bit, _)| flags & bit != 0)
            .map(|(_, kind)| kind);
        let verify = (flags & VERIFY != 0).then_some(&TokenKind::Verify);
        plain.chain(self.channels()).chain(verify)
    }

    /// Whether any kind is a service kind (`channel:*`, `verify`).
    pub fn has_service_kind(&self) -> bool {
        self.flags & VERIFY != 0 || self.channels.is_some()
    }

    fn channels(&self) -> &[TokenKind] {
        self.channels.as_deref().unwrap_or_default()
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
        k.iter().cloned().collect()
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

    #[test]
    fn sets_are_sorted_distinct_and_compare_by_content() {
        let all =
            TokenKinds::parse_csv("verify,channel:zulip,api,channel:slack,manage,api").unwrap();
        assert_eq!(
            all.to_csv(),
            "manage,api,channel:slack,channel:zulip,verify"
        );
        assert_eq!(
            all,
            TokenKinds::parse_csv("manage,api,channel:slack,channel:zulip,verify").unwrap()
        );
        let slack = TokenKind::parse("channel:slack").unwrap();
        let teams = TokenKind::parse("channel:teams").unwrap();
        assert!(all.contains(&slack) && !all.contains(&teams));
        assert!(all.has_service_kind());
        assert!(!TokenKinds::manage_api().has_service_kind());
        let some = TokenKinds::new([TokenKind::Api, slack.clone()]).unwrap();
        assert!(some.is_subset(&all) && !all.is_subset(&some));
        assert!(!TokenKinds::new([teams]).unwrap().is_subset(&all));
        assert!(
            !TokenKinds::new([TokenKind::Verify])
                .unwrap()
                .is_subset(&some)
        );
        assert!(TokenKinds::manage_api().is_subset(&all));
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(
            json,
            r#"["manage","api","channel:slack","channel:zulip","verify"]"#
        );
        assert_eq!(serde_json::from_str::<TokenKinds>(&json).unwrap(), all);
    }
}
