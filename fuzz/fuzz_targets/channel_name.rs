//! `ChannelName` parsing. Properties checked on every input:
//!
//! - `ChannelName::parse` never panics and accepts exactly what a plain model accepts:
//!   after ASCII lower-casing, 1–32 bytes, an ASCII letter first, then only letters,
//!   digits, `-` and `_`; an accepted name is the lower-cased input;
//! - normalization is idempotent and case-blind: `parse(name) == name` and
//!   `parse(UPPER(name)) == name`;
//! - `FromStr`, `TryFrom` and serde agree with `parse`, and JSON round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ownership_core::ChannelName;
use ownership_core::ids::CHANNEL_NAME_MAX_BYTES;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    check(&raw);
});

fn model(raw: &str) -> Option<String> {
    let name = raw.to_ascii_lowercase();
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    (first && rest && name.len() <= CHANNEL_NAME_MAX_BYTES).then_some(name)
}

fn check(raw: &str) {
    let parsed = ChannelName::parse(raw);
    assert_eq!(
        parsed.as_ref().ok().map(|name| name.as_str().to_owned()),
        model(raw),
        "parse disagrees with the model"
    );
    assert_eq!(raw.parse::<ChannelName>().ok(), parsed.clone().ok());
    assert_eq!(ChannelName::try_from(raw).ok(), parsed.clone().ok());
    let json = serde_json::to_string(raw).expect("a str serializes");
    assert_eq!(
        serde_json::from_str::<ChannelName>(&json).ok(),
        parsed.clone().ok(),
        "serde disagrees with parse"
    );
    if let Ok(name) = parsed {
        assert_eq!(ChannelName::parse(name.as_str()).ok(), Some(name.clone()));
        let upper = name.as_str().to_ascii_uppercase();
        assert_eq!(ChannelName::parse(&upper).ok(), Some(name.clone()));
        assert_eq!(name.to_string(), name.as_str());
        let encoded = serde_json::to_string(&name).expect("a name serializes");
        assert_eq!(
            serde_json::from_str::<ChannelName>(&encoded).ok(),
            Some(name)
        );
    }
}
