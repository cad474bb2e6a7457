//! Validated identifiers. Each is constructed only by parsing (`FromStr`, `TryFrom`,
//! serde), so holding one is proof it passed validation.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{Error, Result};

/// Values that must never name an owner: the sentinels that caused cross-tenant
/// fallbacks in the source systems.
pub const RESERVED_OWNER_IDS: [&str; 3] = ["default", "<unset>", "system"];

/// Longest accepted owner id, in bytes.
pub const OWNER_ID_MAX_BYTES: usize = 128;

/// Who owns a resource. 1–128 bytes, no whitespace, control or format (Unicode category
/// `Cf`: zero-width, bidirectional and other invisible) characters, never one of
/// [`RESERVED_OWNER_IDS`]. Compared exactly (case-sensitive, no normalization).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerId(SmallStr);

impl OwnerId {
    /// Parses and validates an owner id.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid("owner_id", "must not be empty"));
        }
        if raw.len() > OWNER_ID_MAX_BYTES {
            return Err(Error::invalid(
                "owner_id",
                format!("must be at most {OWNER_ID_MAX_BYTES} bytes"),
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_format_char(c))
        {
            return Err(Error::invalid(
                "owner_id",
                "must not contain whitespace, control or invisible format characters (such as zero-width or bidirectional-override)",
            ));
        }
        if RESERVED_OWNER_IDS.contains(&raw) {
            return Err(Error::invalid("owner_id", format!("`{raw}` is reserved")));
        }
        Ok(Self(SmallStr::new(raw)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Unicode format characters (general category `Cf`): invisible characters such as
/// U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER, U+FEFF and the bidirectional controls.
/// Refused in ids so that an id cannot render as another (`bob` and `b\u{200B}ob`; Trojan
/// Source, CVE-2021-42574).
pub fn is_format_char(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

/// A URL as it may be shown in audit details, delivery errors and logs: scheme, host, port
/// and path only. User information (`user:password@`), the query and the fragment are cut
/// off, since webhook receivers often carry a secret there (`?token=…`). Works on text, so
/// that even a URL no parser accepts is shown without them.
pub fn redacted_url(raw: &str) -> String {
    // Query and fragment: everything from the first `?` or `#`.
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let without_query = raw.get(..end).unwrap_or_default();
    // User information: between `scheme://` and the last `@` of the authority.
    let Some((scheme, rest)) = without_query.split_once("://") else {
        return without_query.to_owned();
    };
    let authority_end = rest.find(['/', '\\']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// Longest accepted channel name, in bytes.
pub const CHANNEL_NAME_MAX_BYTES: usize = 32;

/// A chat channel (`telegram`, `slack`, ...). Normalized to lower case; ASCII letters,
/// digits, `-` and `_`, starting with a letter, at most 32 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(String);

impl ChannelName {
    /// Parses a channel name, normalizing it to lower case.
    pub fn parse(raw: &str) -> Result<Self> {
        let name = raw.to_ascii_lowercase();
        if name.is_empty() {
            return Err(Error::invalid("channel", "must not be empty"));
        }
        if name.len() > CHANNEL_NAME_MAX_BYTES {
            return Err(Error::invalid(
                "channel",
                format!("must be at most {CHANNEL_NAME_MAX_BYTES} bytes"),
            ));
        }
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !first_ok || !rest_ok {
            return Err(Error::invalid(
                "channel",
                "must start with a letter and hold only letters, digits, `-` and `_`",
            ));
        }
        Ok(Self(name))
    }

    /// The normalized name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest accepted external id, in bytes.
pub const EXTERNAL_ID_MAX_BYTES: usize = 256;

/// A sender's id on a channel (a Telegram user id, a Slack member id). 1–256 bytes, no
/// control or format (`Cf`) characters, no leading or trailing whitespace. Compared exactly.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExternalId(String);

impl ExternalId {
    /// Parses and validates an external id.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid("external_id", "must not be empty"));
        }
        if raw.len() > EXTERNAL_ID_MAX_BYTES {
            return Err(Error::invalid(
                "external_id",
                format!("must be at most {EXTERNAL_ID_MAX_BYTES} bytes"),
            ));
        }
        if raw.trim() != raw {
            return Err(Error::invalid(
                "external_id",
                "must not start or end with whitespace",
            ));
        }
        if raw.chars().any(|c| c.is_control() || is_format_char(c)) {
            return Err(Error::invalid(
                "external_id",
                "must not contain control or invisible format characters (such as zero-width or bidirectional-override)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A chat account: `(channel, external_id)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChannelKey {
    /// The normalized channel.
    pub channel: ChannelName,
    /// The sender's id on it.
    pub external_id: ExternalId,
}

impl ChannelKey {
    /// Pairs a channel with an external id.
    pub fn new(channel: ChannelName, external_id: ExternalId) -> Self {
        Self {
            channel,
            external_id,
        }
    }
}

/// Text held inline when it is short (up to [`SmallStr::INLINE`] bytes: public ids, UUIDs,
/// most user names), shared behind an `Arc` otherwise. A clone of the usual id copies
/// bytes and touches no shared counter on another cache line: a warm token check clones
/// an owner id and a token id for every request.
#[derive(Clone)]
enum SmallStr {
    Inline {
        len: u8,
        bytes: [u8; SmallStr::INLINE],
    },
    Shared(Arc<str>),
}

impl SmallStr {
    /// The longest text held inline (the whole value is then 40 bytes).
    const INLINE: usize = 38;

    fn new(text: &str) -> Self {
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= Self::INLINE => {
                let mut bytes = [0; Self::INLINE];
                for (to, from) in bytes.iter_mut().zip(text.as_bytes()) {
                    *to = *from;
                }
                Self::Inline { len, bytes }
            }
            _ => Self::Shared(text.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Inline { len, bytes } => {
                let text = bytes.get(..usize::from(*len)).unwrap_or_default();
                // Always valid: the bytes were copied from a `str`.
                std::str::from_utf8(text).unwrap_or_default()
            }
            Self::Shared(text) => text,
        }
    }
}

impl std::ops::Deref for SmallStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SmallStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

// Compared, ordered and hashed as the text (a text is always held the same way, but the
// order of the variants is not the order of the texts).
impl PartialEq for SmallStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for SmallStr {}
impl PartialOrd for SmallStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SmallStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}
impl std::hash::Hash for SmallStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// Public ids of stored objects (tokens, resources, pairing requests, webhook
/// deliveries): a short family tag and 20 lower-case hex digits, e.g. `tok_0123456789abcdef0123`.
/// Not secret; safe in URLs and logs.
macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(SmallStr);

        const _: () = assert!($prefix.len() + 20 <= SmallStr::INLINE);

        impl $name {
            /// The tag every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Makes a new id from 10 random bytes of the caller's random source.
            pub fn generate(rng: &mut dyn crate::RandomSource) -> Self {
                let mut bytes = [0u8; 10];
                rng.fill(&mut bytes);
                Self(SmallStr::new(&format!("{}{}", $prefix, hex::encode(bytes))))
            }

            /// Parses an id: the tag, then exactly 20 lower-case hex digits.
            pub fn parse(raw: &str) -> Result<Self> {
                let ok = raw
                    .strip_prefix($prefix)
                    .is_some_and(|rest| rest.len() == 20 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                if ok {
                    Ok(Self(SmallStr::new(raw)))
                } else {
                    Err(Error::invalid("id", concat!("expected `", $prefix, "` and 20 hex digits")))
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_owned()
            }
        }
    };
}

public_id!(
    /// A token's public id.
    TokenId,
    "tok_"
);
public_id!(
    /// A registered resource's public id.
    ResourceId,
    "res_"
);
public_id!(
    /// A pairing request's public id (listed to admins instead of its code).
    PairingRequestId,
    "pair_"
);
public_id!(
    /// A webhook delivery's public id (also its `webhook-id` header).
    DeliveryId,
    "msg_"
);

/// The plumbing shared by the validated string newtypes.
macro_rules! string_newtype_impls {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                Self::parse(&s)
            }
        }
        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                String::from(&*v.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}

/// Longest accepted secret name, in bytes.
pub const SECRET_NAME_MAX_BYTES: usize = 128;

/// The name of an owner's secret: 1–128 bytes of ASCII letters, digits, `_`, `-` and `.`,
/// not starting with `.`. Names are per owner: two owners may both hold `OPENAI_KEY`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

impl SecretName {
    /// Parses and validates a secret name.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() || raw.len() > SECRET_NAME_MAX_BYTES {
            return Err(Error::invalid(
                "name",
                format!("must be 1 to {SECRET_NAME_MAX_BYTES} bytes"),
            ));
        }
        if raw.starts_with('.')
            || !raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(Error::invalid(
                "name",
                "must hold only letters, digits, `_`, `-` and `.`, and not start with `.`",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest accepted label, in characters.
pub const LABEL_MAX_CHARS: usize = 100;

/// A person's name for a token or resource credential ("ci", "laptop"): at most 100
/// characters, no control characters. Shown back as given; never part of a rule.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// Parses and validates a label.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.chars().count() > LABEL_MAX_CHARS {
            return Err(Error::invalid(
                "label",
                format!("must be at most {LABEL_MAX_CHARS} characters"),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(Error::invalid(
                "label",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// One of core's own labels ("bootstrap"), known to be valid.
    pub(crate) fn known(text: &'static str) -> Self {
        Self(text.to_owned())
    }

    /// An optional label, as a request carries it.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>> {
        raw.map(Self::parse).transpose()
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype_impls!(OwnerId, ChannelName, ExternalId, SecretName, Label);

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A label reads as its text (`label.as_deref()` on an `Option<Label>`).
impl std::ops::Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn owner_ids_short_and_long_behave_as_their_text() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};
        let hash = |id: &OwnerId| {
            let mut h = DefaultHasher::new();
            id.hash(&mut h);
            h.finish()
        };
        let texts = [
            "a".to_owned(),
            "b".repeat(38),
            "b".repeat(39),
            "ab".repeat(64),
            "é".repeat(19),
            "é".repeat(20),
            "zz".to_owned(),
        ];
        let ids: Vec<OwnerId> = texts.iter().map(|t| OwnerId::parse(t).unwrap()).collect();
        for (a, ta) in ids.iter().zip(&texts) {
            assert_eq!(a.as_str(), ta);
            assert_eq!(a.to_string(), *ta);
            assert_eq!(format!("{a:?}"), format!("{ta:?}"));
            for (b, tb) in ids.iter().zip(&texts) {
                assert_eq!(a.cmp(b), ta.cmp(tb), "{ta} vs {tb}");
                assert_eq!(a == b, ta == tb);
            }
            let again = OwnerId::parse(ta).unwrap();
            assert_eq!(hash(a), hash(&again));
            assert_eq!(
                serde_json::from_str::<OwnerId>(&serde_json::to_string(a).unwrap()).unwrap(),
                *a
            );
        }
        let token = TokenId::parse("tok_0123456789abcdef0123").unwrap();
        assert_eq!(token.as_str(), "tok_0123456789abcdef0123");
        assert_eq!(String::from(token.clone()), "tok_0123456789abcdef0123");
        assert!(token < TokenId::parse("tok_0123456789abcdef0124").unwrap());
    }

    #[test]
    fn reserved_owner_ids_are_refused() {
        for r in RESERVED_OWNER_IDS {
            assert!(OwnerId::parse(r).is_err(), "{r} accepted");
        }
        assert!(
            OwnerId::parse("Default").is_ok(),
            "comparison is exact, not case-folded"
        );
    }

    #[test]
    fn owner_id_bounds() {
        assert!(OwnerId::parse("").is_err());
        assert!(OwnerId::parse(&"a".repeat(128)).is_ok());
        assert!(OwnerId::parse(&"a".repeat(129)).is_err());
        assert!(OwnerId::parse("a b").is_err());
        assert!(OwnerId::parse("a\u{202E}b").is_err());
        assert!(OwnerId::parse("a\0").is_err());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<OwnerId>("\"system\"").is_err());
        assert!(serde_json::from_str::<OwnerId>("\"alice\"").is_ok());
        assert_eq!(
            serde_json::from_str::<ChannelName>("\"Telegram\"")
                .map(|c| c.as_str().to_owned())
                .ok(),
            Some("telegram".to_owned())
        );
        assert!(serde_json::from_str::<TokenId>("\"tok_xyz\"").is_err());
    }

    #[test]
    fn channel_names() {
        assert_eq!(
            ChannelName::parse("SLACK").map(String::from).ok(),
            Some("slack".into())
        );
        for bad in ["", "1abc", "a b", "a/b", "../x", "é", &"a".repeat(33)] {
            assert!(ChannelName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn invisible_and_format_characters_are_refused_in_ids() {
        // Category Cf: zero-width space, joiners, word joiner, byte-order mark, soft
        // hyphen, Arabic number sign, a tag character, and the bidirectional controls.
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{0600}',
            '\u{E0041}',
            '\u{202E}',
            '\u{2066}',
        ] {
            let id = format!("b{c}ob");
            assert!(OwnerId::parse(&id).is_err(), "{:?} accepted", c);
            assert!(ExternalId::parse(&id).is_err(), "{:?} accepted", c);
            assert!(
                serde_json::from_value::<OwnerId>(serde_json::Value::String(id)).is_err(),
                "{c:?} accepted by serde"
            );
        }
        // Visible non-ASCII letters and marks stay allowed.
        for ok in ["josé", "Ålborg", "日本", "क्ष"] {
            assert!(OwnerId::parse(ok).is_ok(), "{ok} refused");
        }
    }

    #[test]
    fn urls_are_shown_without_user_information_query_or_fragment() {
        for (raw, shown) in [
            (
                "https://hooks.example.com/in",
                "https://hooks.example.com/in",
            ),
            (
                "https://hooks.example.com/in?token=s3cret",
                "https://hooks.example.com/in",
            ),
            (
                "https://u:p@hooks.example.com:8443/a/b?x=1#frag",
                "https://hooks.example.com:8443/a/b",
            ),
            ("https://a@b@hooks.example.com", "https://hooks.example.com"),
            ("https://hooks.example.com#k=v", "https://hooks.example.com"),
            (
                "https://hooks.example.com/p@th",
                "https://hooks.example.com/p@th",
            ),
            ("not a url?secret=1", "not a url"),
        ] {
            assert_eq!(redacted_url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn external_ids() {
        assert!(ExternalId::parse("12345").is_ok());
        assert!(ExternalId::parse("U0 123").is_ok());
        assert!(ExternalId::parse(" x").is_err());
        assert!(ExternalId::parse("x\n").is_err());
    }

    proptest! {
        #[test]
        fn owner_id_parse_roundtrips(s in "[^\\s\\p{Cc}]{1,64}") {
            match OwnerId::parse(&s) {
                Ok(id) => prop_assert_eq!(id.as_str(), s.as_str()),
                Err(_) => prop_assert!(RESERVED_OWNER_IDS.contains(&s.as_str()) || s.len() > OWNER_ID_MAX_BYTES || s.chars().any(is_format_char)),
            }
        }

        #[test]
        fn channel_name_is_idempotent(s in "[A-Za-z][A-Za-z0-9_-]{0,31}") {
            let once = ChannelName::parse(&s).unwrap();
            let twice = ChannelName::parse(once.as_str()).unwrap();
            prop_assert_eq!(once, twice);
        }
    }
}
