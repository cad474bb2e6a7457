//! Bearer token format (docs/tokens.md; the exact format is in `docs/tokens.md`).
//!
//! A token we issue looks like `own_u_<43 base62 random><6 base62 CRC32>`:
//!
//! - `own_` is the product prefix secret scanners look for, and the next two characters
//!   name the [`TokenFamily`] (`u_` user, `s_` service, `r_` resource);
//! - the random part is 32 bytes (256 bits) from the caller's [`RandomSource`], read as
//!   one big-endian number and written in base62 (`0-9A-Za-z`), left-padded with `0` to
//!   43 characters;
//! - the checksum is the CRC32 (IEEE) of everything before it (prefix and random part),
//!   written in base62, left-padded with `0` to 6 characters.
//!
//! [`classify`] checks that shape without touching a store, so a mistyped or truncated
//! token of ours is refused before any lookup. Tokens that do not carry our prefix
//! (provisioned or legacy tokens, docs/tokens.md) are accepted as [`PresentedToken::Foreign`]
//! and can only be found by their digest.
//!
//! Tokens are stored as a SHA-256 [`TokenDigest`] only; digests compare in constant
//! time. No type here prints a token's value: `Debug` shows at most the display prefix.

use std::fmt;
use std::hash::Hash;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::RandomSource;
use crate::error::{Error, Result};

/// The product prefix every token we issue starts with.
pub const PRODUCT_PREFIX: &str = "own_";

/// The base62 alphabet of the random part and the checksum, in digit order (`0` is zero).
pub const BASE62_ALPHABET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of a family prefix such as `own_u_`.
pub const FAMILY_PREFIX_LEN: usize = 6;

/// Random bytes in a token (256 bits).
pub const RANDOM_BYTES: usize = 32;

/// Base62 characters of the random part (62^43 > 2^256, so 32 bytes always fit).
pub const RANDOM_CHARS: usize = 43;

/// Base62 characters of the CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_CHARS: usize = 6;

/// Total length of a token we issue: 6 + 43 + 6 = 55 ASCII characters.
pub const TOKEN_LEN: usize = FAMILY_PREFIX_LEN + RANDOM_CHARS + CHECKSUM_CHARS;

/// Characters of one of our tokens shown as its display prefix (`own_u_AbCd`): the family
/// prefix and 4 random characters (about 24 of its 256 random bits).
pub const DISPLAY_PREFIX_CHARS: usize = 10;

/// Longest foreign (unprefixed) token accepted, in bytes.
pub const FOREIGN_TOKEN_MAX_BYTES: usize = 512;

/// Most characters of a foreign token ever shown in its display prefix.
pub const FOREIGN_DISPLAY_CHARS: usize = 4;

/// Shortest foreign token whose first [`FOREIGN_DISPLAY_CHARS`] characters are shown; a
/// shorter one shows none, so a display prefix never reveals more than a quarter of it.
pub const FOREIGN_DISPLAY_MIN_LEN: usize = 16;

/// What a token we issue is for, named by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TokenFamily {
    /// A person's token (`own_u_`).
    User,
    /// A service token for a program such as a channel adapter (`own_s_`).
    Service,
    /// A resource credential (`own_r_`).
    Resource,
}

impl TokenFamily {
    /// Every family, in prefix order.
    pub const ALL: [Self; 3] = [Self::User, Self::Service, Self::Resource];

    /// The family's full prefix: `own_u_`, `own_s_` or `own_r_`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::User => "own_u_",
            Self::Service => "own_s_",
            Self::Resource => "own_r_",
        }
    }

    /// The family of a stored token, from its display prefix (which starts with the
    /// family's prefix). `None` for a display prefix no family issues.
    fn of_display_prefix(display_prefix: &str) -> Option<Self> {
        Self::from_prefix(display_prefix.get(..FAMILY_PREFIX_LEN)?)
    }

    /// The family whose prefix is exactly `prefix`.
    fn from_prefix(prefix: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.prefix() == prefix)
    }
}

/// What listings and logs show of a token: the first 10 characters of one of ours
/// (`own_u_AbCd`, which names its family), or for a foreign token at most its first 4
/// characters and `…`. Made by [`TokenSecret::display_prefix`]; a stored one is parsed back
/// with [`DisplayPrefix::parse`] (1 to 10 characters, no whitespace or control characters).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayPrefix(String);

impl DisplayPrefix {
    /// Parses a stored display prefix.
    pub fn parse(raw: &str) -> Result<Self> {
        let chars = raw.chars().count();
        if chars == 0
            || chars > DISPLAY_PREFIX_CHARS
            || raw.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Error::invalid(
                "display_prefix",
                format!(
                    "must be 1 to {DISPLAY_PREFIX_CHARS} characters without whitespace or control characters"
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `…`: what is shown of a foreign token too short to show any of it.
    pub fn hidden() -> Self {
        Self("…".to_owned())
    }

    /// The family of the token it shows: ours start with the family's prefix; `None` for a
    /// foreign token's.
    pub fn family(&self) -> Option<TokenFamily> {
        TokenFamily::of_display_prefix(&self.0)
    }
}

impl fmt::Debug for DisplayPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for DisplayPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for DisplayPrefix {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DisplayPrefix {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A display prefix reads as its text.
impl std::ops::Deref for DisplayPrefix {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayPrefix {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<DisplayPrefix> for String {
    fn from(v: DisplayPrefix) -> String {
        v.0
    }
}

/// A plaintext bearer token. Shown to its owner once, never logged: `Debug` prints only
/// the display prefix (`TokenSecret(own_u_AbCd…)`), and the type is not `Serialize`.
/// Equality is constant-time.
#[derive(Clone)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// Issues a new token of `family` from 32 bytes of `rng`.
    pub fn generate(family: TokenFamily, rng: &mut dyn RandomSource) -> Self {
        let mut random = [0_u8; RANDOM_BYTES];
        rng.fill(&mut random);
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(family.prefix());
        token.push_str(&base62_fixed(&random, RANDOM_CHARS));
        let checksum = checksum_of(&token);
        token.push_str(&checksum);
        Self(token)
    }

    /// The token's value, to show once or to send. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest of the token's exact bytes: what the store keeps.
    pub fn digest(&self) -> TokenDigest {
        digest_of(&self.0)
    }

    /// A short, safe label for listings and logs: the first 10 characters of one of our
    /// tokens (`own_u_AbCd`); for a foreign token its first 4 characters and `…` (only
    /// `…` when the token is shorter than 16 characters).
    pub fn display_prefix(&self) -> DisplayPrefix {
        if self.family().is_some() {
            return DisplayPrefix(self.0.chars().take(DISPLAY_PREFIX_CHARS).collect());
        }
        let shown = if self.0.chars().count() >= FOREIGN_DISPLAY_MIN_LEN {
            FOREIGN_DISPLAY_CHARS
        } else {
            0
        };
        let mut prefix: String = self.0.chars().take(shown).collect();
        prefix.push('…');
        DisplayPrefix(prefix)
    }

    /// The family of one of our tokens; `None` for a foreign token.
    pub fn family(&self) -> Option<TokenFamily> {
        parse_ours(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prefix = self.display_prefix().0;
        if !prefix.ends_with('…') {
            prefix.push('…');
        }
        write!(f, "TokenSecret({prefix})")
    }
}

impl PartialEq for TokenSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for TokenSecret {}

/// A bearer token as presented by a client, classified without a store read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedToken {
    /// One of our tokens: known prefix, exact shape and a correct checksum.
    Ours(TokenSecret, TokenFamily),
    /// A token without our prefix (provisioned or legacy); only its digest can find it.
    Foreign(TokenSecret),
}

impl PresentedToken {
    /// The presented token, whichever kind it is.
    pub fn secret(&self) -> &TokenSecret {
        match self {
            Self::Ours(secret, _) | Self::Foreign(secret) => secret,
        }
    }

    /// The family of one of our tokens; `None` for a foreign token.
    pub fn family(&self) -> Option<TokenFamily> {
        match self {
            Self::Ours(_, family) => Some(*family),
            Self::Foreign(_) => None,
        }
    }

    /// The presented token, consuming the classification.
    pub fn into_secret(self) -> TokenSecret {
        match self {
            Self::Ours(secret, _) | Self::Foreign(secret) => secret,
        }
    }
}

/// Classifies a raw bearer token without any store access.
///
/// - A token starting with `own_` must have a known family prefix, exactly
///   [`TOKEN_LEN`] characters, base62 after the prefix and a correct CRC32: then it is
///   [`PresentedToken::Ours`].
/// - Any other token of 1 to [`FOREIGN_TOKEN_MAX_BYTES`] bytes of visible ASCII
///   (`0x21..=0x7e`) is [`PresentedToken::Foreign`].
/// - Everything else (empty, too long, whitespace, control or non-ASCII characters, or a
///   malformed `own_` token) is [`Error::Unauthenticated`], which says nothing about why.
pub fn classify(raw: &str) -> Result<PresentedToken> {
    let secret = TokenSecret(raw.to_owned());
    Ok(match family_of(raw)? {
        Some(family) => PresentedToken::Ours(secret, family),
        None => PresentedToken::Foreign(secret),
    })
}

/// [`classify`] without copying the token: `Some(family)` for one of ours, `None` for a
/// foreign token, the same error for everything else. The request path uses it.
pub fn family_of(raw: &str) -> Result<Option<TokenFamily>> {
    let family = shape_of(raw)?;
    if family.is_some() && !checksum_holds(raw) {
        return Err(Error::Unauthenticated);
    }
    Ok(family)
}

/// [`family_of`] without the checksum: the prefix, length and alphabet of one of ours, or
/// the bounds of a foreign token. The warm path checks only this before the cache: a
/// cache hit has already matched the digest of a stored token, so its checksum held when
/// it was issued. [`checksum_holds`] is checked on a miss, before the store is asked.
pub fn shape_of(raw: &str) -> Result<Option<TokenFamily>> {
    if raw.starts_with(PRODUCT_PREFIX) {
        return shape_ours(raw).map(Some).ok_or(Error::Unauthenticated);
    }
    let visible = raw.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if raw.is_empty() || raw.len() > FOREIGN_TOKEN_MAX_BYTES || !visible {
        return Err(Error::Unauthenticated);
    }
    Ok(None)
}

/// Whether a token of ours (one [`shape_of`] accepted as ours) carries a valid checksum.
/// Anything else is `false`.
pub fn checksum_holds(raw: &str) -> bool {
    raw.split_at_checked(TOKEN_LEN - CHECKSUM_CHARS)
        .is_some_and(|(body, checksum)| checksum_digits(body) == *checksum.as_bytes())
}

/// A 32-byte digest kept in place of a secret (a token's SHA-256, a pairing code's keyed
/// hash): raw bytes in and out, hex for text, constant-time equality, and a `Debug` that
/// shows only the first 4 bytes.
macro_rules! secret_digest {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps a digest read back from the store.
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The digest's bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The digest as 64 lower-case hex characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses 64 hex characters.
            pub fn from_hex(text: &str) -> $crate::error::Result<Self> {
                $crate::token::decode_hex32(text).map(Self).ok_or_else(|| {
                    $crate::error::Error::invalid($field, "must be 64 hexadecimal characters")
                })
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                $crate::token::ct_eq_32(&self.0, &other.0)
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                std::hash::Hash::hash(&self.0, state);
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({}…)", stringify!($name), $crate::token::short_hex(&self.0))
            }
        }
    };
}
pub(crate) use secret_digest;

secret_digest!(
    /// The SHA-256 digest of a token, the only form in which tokens are stored. Equality
    /// is constant-time; `Debug` shows the first 4 bytes in hex.
    TokenDigest,
    "token_digest"
);

/// The SHA-256 digest of a raw token's exact bytes (no trimming or normalization).
pub fn digest_of(raw: &str) -> TokenDigest {
    TokenDigest(Sha256::digest(raw.as_bytes()).into())
}

/// The family of `raw` if it is exactly one of our tokens (prefix, length, alphabet and
/// checksum); `None` otherwise.
fn parse_ours(raw: &str) -> Option<TokenFamily> {
    shape_ours(raw).filter(|_| checksum_holds(raw))
}

/// The family of a token of ours by its prefix, length and alphabet (not its checksum).
fn shape_ours(raw: &str) -> Option<TokenFamily> {
    if raw.len() != TOKEN_LEN {
        return None;
    }
    let family = TokenFamily::from_prefix(raw.get(..FAMILY_PREFIX_LEN)?)?;
    let rest = raw.as_bytes().get(FAMILY_PREFIX_LEN..)?;
    // The base62 alphabet is exactly the ASCII letters and digits. Every byte is checked,
    // without an early exit: a loop the compiler vectorizes (this runs on every request).
    rest.iter()
        .fold(true, |ok, b| ok & b.is_ascii_alphanumeric())
        .then_some(family)
}

/// The base62 CRC32 (IEEE) of `body`, [`CHECKSUM_CHARS`] characters.
fn checksum_of(body: &str) -> String {
    checksum_digits(body)
        .iter()
        .map(|&d| char::from(d))
        .collect()
}

/// [`checksum_of`] on the stack (the check of every presented token).
fn checksum_digits(body: &str) -> [u8; CHECKSUM_CHARS] {
    let mut number = crc32fast::hash(body.as_bytes());
    let mut digits = [b'0'; CHECKSUM_CHARS];
    // 62^6 > 2^32: six digits hold every CRC32.
    for digit in digits.iter_mut().rev() {
        *digit = base62_digit(u8::try_from(number % 62).unwrap_or(0));
        number /= 62;
    }
    digits
}

/// Writes the big-endian number `bytes` in base62, left-padded with `0` to `width`
/// characters. Callers pick `width` large enough for every value of `bytes`.
fn base62_fixed(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    for _ in 0..width {
        // Long division of `number` by 62; the remainder is the next lowest digit.
        let mut remainder: u32 = 0;
        for byte in &mut number {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(acc / 62).unwrap_or(u8::MAX);
            remainder = acc % 62;
        }
        digits.push(base62_digit(u8::try_from(remainder).unwrap_or(0)));
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// The base62 character for a digit value below 62.
fn base62_digit(value: u8) -> u8 {
    match value {
        0..=9 => b'0' + value,
        10..=35 => b'A' + (value - 10),
        _ => b'a' + (value - 36).min(25),
    }
}

/// The digit value of a base62 character.
#[cfg(test)]
fn base62_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

/// Constant-time equality of two 32-byte values: the differences of all four 8-byte words
/// are folded together before the one comparison, which `subtle` makes without a branch.
/// (A cached token is found by comparing its digest with map keys; `subtle`'s byte slice
/// comparison, an optimization barrier per byte, cost more than the rest of the hit.)
pub(crate) fn ct_eq_32(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0_u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
        diff |= word(x) ^ word(y);
    }
    subtle::ConstantTimeEq::ct_eq(&diff, &0).into()
}

/// Decodes exactly 64 hex characters into 32 bytes.
pub(crate) fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let mut bytes = [0_u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

/// HMAC-SHA256 of the concatenation of `parts` under `key` (shared by the pairing and
/// webhook modules).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{KeyInit as _, Mac as _};
    #[expect(
        clippy::expect_used,
        reason = "HMAC accepts keys of every length (RFC 2104 hashes or pads them); \
                  `new_from_slice` only has an error case for fixed-key MACs"
    )]
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The first 4 bytes of `bytes` in hex, for truncated `Debug` output.
pub(crate) fn short_hex(bytes: &[u8]) -> String {
    hex::encode(bytes.iter().take(4).copied().collect::<Vec<u8>>())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn digest_equality_sees_every_bit() {
        let a: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 7).unwrap_or(0));
        assert!(ct_eq_32(&a, &a));
        assert_eq!(TokenDigest::from_bytes(a), TokenDigest::from_bytes(a));
        for byte in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[byte] ^= 1 << bit;
                assert!(!ct_eq_32(&a, &b), "byte {byte} bit {bit}");
                assert_ne!(TokenDigest::from_bytes(a), TokenDigest::from_bytes(b));
            }
        }
    }

    /// A deterministic source that repeats `bytes`.
    fn repeating(bytes: Vec<u8>) -> impl FnMut(&mut [u8]) {
        let mut i = 0;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = bytes[i % bytes.len()];
                i += 1;
            }
        }
    }

    fn family_strategy() -> impl Strategy<Value = TokenFamily> {
        prop::sample::select(TokenFamily::ALL.to_vec())
    }

    fn token_from(family: TokenFamily, random: [u8; 32]) -> TokenSecret {
        TokenSecret::generate(family, &mut repeating(random.to_vec()))
    }

    #[test]
    fn alphabet_helpers_agree_with_the_documented_alphabet() {
        for (value, c) in BASE62_ALPHABET.bytes().enumerate() {
            let value = u8::try_from(value).unwrap();
            assert_eq!(base62_digit(value), c);
            assert_eq!(base62_value(c), Some(value));
        }
        assert_eq!(base62_value(b'_'), None);
        assert_eq!(base62_value(b'-'), None);
    }

    #[test]
    fn a_token_has_the_documented_shape() {
        let token = token_from(TokenFamily::User, [0xab; 32]);
        let raw = token.expose();
        assert_eq!(raw.len(), 55);
        assert_eq!(TOKEN_LEN, 55);
        assert!(raw.starts_with("own_u_"));
        assert!(raw[6..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(token.family(), Some(TokenFamily::User));
        assert_eq!(TokenFamily::Service.prefix(), "own_s_");
        assert_eq!(TokenFamily::Resource.prefix(), "own_r_");
    }

    #[test]
    fn random_part_is_fixed_width_base62_of_the_bytes() {
        // All-zero bytes are 43 zeros; 0x00..01 is 42 zeros and a 1.
        let zero = token_from(TokenFamily::User, [0; 32]);
        assert_eq!(&zero.expose()[6..49], "0".repeat(43));
        let mut one = [0; 32];
        one[31] = 1;
        let one = token_from(TokenFamily::User, one);
        assert_eq!(&one.expose()[6..49], format!("{}1", "0".repeat(42)));
        // 2^256 - 1 still fits in 43 characters.
        let max = token_from(TokenFamily::User, [0xff; 32]);
        // Python 3: base62(2**256 - 1) padded to 43.
        assert_eq!(
            &max.expose()[6..49],
            "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1"
        );
    }

    #[test]
    fn known_token_vector_computed_independently() {
        // Computed with Python 3: n = int.from_bytes(bytes(range(32)), "big"), written in
        // base62 (alphabet 0-9A-Za-z) padded to 43; crc = zlib.crc32(b"own_u_" + random)
        // written in base62 padded to 6.
        let token = token_from(TokenFamily::User, core::array::from_fn(|i| i as u8));
        assert_eq!(token.expose(), KNOWN_TOKEN);
        assert!(matches!(
            classify(KNOWN_TOKEN),
            Ok(PresentedToken::Ours(_, TokenFamily::User))
        ));
    }

    const KNOWN_TOKEN: &str = "own_u_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf4eA7G4";

    #[test]
    fn classify_refuses_malformed_tokens_of_ours_without_a_store() {
        let good = token_from(TokenFamily::Service, [7; 32]);
        let raw = good.expose();
        for bad in [
            format!("{raw}0"),                        // too long
            raw[..54].to_owned(),                     // truncated
            raw.replacen("own_s_", "own_x_", 1),      // unknown family
            raw.replacen("own_s_", "own_u_", 1),      // family changed: checksum covers it
            format!("{}-{}", &raw[..10], &raw[11..]), // outside the alphabet
            "own_".to_owned(),
            "own_u_".to_owned(),
        ] {
            if bad == raw {
                continue;
            }
            assert_eq!(classify(&bad), Err(Error::Unauthenticated), "{bad}");
        }
    }

    #[test]
    fn the_shape_check_leaves_the_checksum_to_checksum_holds() {
        let good = token_from(TokenFamily::User, [9; 32]);
        let raw = good.expose();
        assert_eq!(shape_of(raw), Ok(Some(TokenFamily::User)));
        assert!(checksum_holds(raw));
        // The last checksum character changed to another: the shape holds, the checksum not.
        let last = if raw.ends_with('A') { 'B' } else { 'A' };
        let wrong = format!("{}{last}", &raw[..raw.len() - 1]);
        assert_eq!(shape_of(&wrong), Ok(Some(TokenFamily::User)));
        assert!(!checksum_holds(&wrong));
        assert_eq!(family_of(&wrong), Err(Error::Unauthenticated));
        // A family changed: the same shape, a checksum that no longer holds.
        let swapped = raw.replacen("own_u_", "own_s_", 1);
        assert_eq!(shape_of(&swapped), Ok(Some(TokenFamily::Service)));
        assert!(!checksum_holds(&swapped));
        // Everything else refused by shape alone; foreign tokens pass as foreign.
        for bad in [format!("{raw}0"), raw[..54].to_owned(), "own_u_".to_owned()] {
            assert_eq!(shape_of(&bad), Err(Error::Unauthenticated), "{bad}");
        }
        assert_eq!(shape_of("legacy-token-123"), Ok(None));
        assert!(!checksum_holds("short"));
    }

    #[test]
    fn classify_accepts_foreign_tokens_of_visible_ascii() {
        let cases = ["x", "legacy-token-123", "sk_live_ABC", &"a".repeat(512)];
        for raw in cases {
            match classify(raw) {
                Ok(PresentedToken::Foreign(secret)) => {
                    assert_eq!(secret.expose(), raw);
                    assert_eq!(secret.family(), None);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn classify_refuses_empty_long_and_invisible_tokens() {
        for raw in [
            String::new(),
            "a".repeat(513),
            "with space".to_owned(),
            "tab\there".to_owned(),
            "nul\0".to_owned(),
            "del\x7f".to_owned(),
            "ünïcode".to_owned(),
            " ".to_owned(),
        ] {
            assert_eq!(classify(&raw), Err(Error::Unauthenticated));
        }
    }

    #[test]
    fn display_prefix_and_debug_never_show_the_value() {
        let token = token_from(TokenFamily::User, [0x5a; 32]);
        let raw = token.expose().to_owned();
        assert_eq!(token.display_prefix(), &raw[..10]);
        let debug = format!("{token:?}");
        assert_eq!(debug, format!("TokenSecret({}…)", &raw[..10]));
        assert!(!debug.contains(&raw[10..]));
        let presented = classify(&raw).unwrap();
        assert!(!format!("{presented:?}").contains(&raw[10..]));

        let foreign = classify("legacy-secret-value-1234").unwrap().into_secret();
        assert_eq!(foreign.display_prefix(), "lega…");
        assert_eq!(format!("{foreign:?}"), "TokenSecret(lega…)");
        let short = classify("short-secret").unwrap().into_secret();
        assert_eq!(short.display_prefix(), "…");
        assert_eq!(format!("{short:?}"), "TokenSecret(…)");
    }

    #[test]
    fn digest_is_sha256_of_the_exact_bytes() {
        // FIPS 180-2 example: SHA-256("abc").
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(digest_of("abc").to_hex(), expected);
        let foreign = classify("abc").unwrap();
        assert_eq!(foreign.secret().digest().to_hex(), expected);
        assert_ne!(digest_of("abc "), digest_of("abc"));
        assert_eq!(format!("{:?}", digest_of("abc")), "TokenDigest(ba7816bf…)");
    }

    #[test]
    fn digest_hex_round_trips_and_rejects_bad_input() {
        let digest = digest_of("abc");
        assert_eq!(TokenDigest::from_hex(&digest.to_hex()).unwrap(), digest);
        assert_eq!(
            TokenDigest::from_hex(&digest.to_hex().to_uppercase()).unwrap(),
            digest
        );
        assert_eq!(TokenDigest::from_bytes(*digest.as_bytes()), digest);
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(66)] {
            assert!(matches!(
                TokenDigest::from_hex(bad),
                Err(Error::Invalid {
                    field: "token_digest",
                    ..
                })
            ));
        }
        let mut set = std::collections::HashSet::new();
        set.insert(digest);
        assert!(set.contains(&TokenDigest::from_bytes(*digest.as_bytes())));
    }

    #[test]
    fn hmac_helper_matches_rfc_4231() {
        // Test case 1 (short key) and test case 6 (key longer than the block).
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], &[b"Hi ", b"There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    proptest! {
        #[test]
        fn classify_accepts_every_generated_token(
            family in family_strategy(),
            random in any::<[u8; 32]>(),
        ) {
            let token = token_from(family, random);
            prop_assert_eq!(token.expose().len(), TOKEN_LEN);
            prop_assert!(token.expose().starts_with(family.prefix()));
            match classify(token.expose()) {
                Ok(PresentedToken::Ours(secret, f)) => {
                    prop_assert_eq!(f, family);
                    prop_assert_eq!(secret.expose(), token.expose());
                    prop_assert_eq!(secret.digest(), token.digest());
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        /// Any single-character substitution by a base62 character or `_` is refused.
        /// A change inside `own_` makes a token that no longer claims to be ours: it is
        /// then `Foreign` (never `Ours`) and its digest matches nothing we issued.
        #[test]
        fn any_single_substitution_is_rejected(
            family in family_strategy(),
            random in any::<[u8; 32]>(),
            position in 0..TOKEN_LEN,
            replacement in prop::sample::select(
                format!("{BASE62_ALPHABET}_").into_bytes()
            ),
        ) {
            let token = token_from(family, random);
            let mut bytes = token.expose().as_bytes().to_vec();
            prop_assume!(bytes[position] != replacement);
            bytes[position] = replacement;
            let mutated = String::from_utf8(bytes).unwrap();
            let result = classify(&mutated);
            if position < PRODUCT_PREFIX.len() {
                prop_assert!(matches!(result, Ok(PresentedToken::Foreign(_))));
            } else {
                prop_assert_eq!(result, Err(Error::Unauthenticated));
            }
        }

        #[test]
        fn classify_refuses_anything_but_1_to_512_visible_ascii_bytes(raw in "\\PC*") {
            let result = classify(&raw);
            let visible = raw.bytes().all(|b| (0x21..=0x7e).contains(&b));
            if raw.is_empty() || raw.len() > 512 || !visible {
                prop_assert_eq!(result, Err(Error::Unauthenticated));
            }
        }

        #[test]
        fn display_prefix_never_reveals_more_than_four_foreign_chars(
            raw in "[!-~]{1,64}",
        ) {
            prop_assume!(!raw.starts_with(PRODUCT_PREFIX));
            let secret = classify(&raw).unwrap().into_secret();
            let prefix = secret.display_prefix();
            prop_assert!(prefix.ends_with('…'));
            prop_assert!(prefix.chars().count() <= FOREIGN_DISPLAY_CHARS + 1);
            prop_assert!(prefix.chars().count() - 1 <= raw.len() / 4);
        }
    }
}
