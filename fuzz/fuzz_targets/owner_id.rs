//! `OwnerId` parsing. Properties checked on every input:
//!
//! - `OwnerId::parse` never panics and accepts exactly what a plain model accepts:
//!   1–128 bytes, no whitespace, control or format (Unicode category `Cf`) character, not a
//!   reserved sentinel (`default`, `<unset>`, `system`); an accepted id is the input,
//!   unchanged (no normalization);
//! - every way in agrees with `parse`: `FromStr`, `TryFrom<&str>`, `TryFrom<String>` and
//!   serde (a JSON string of the input); an accepted id round-trips through `Display` and
//!   through JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ownership_core::OwnerId;
use ownership_core::ids::{OWNER_ID_MAX_BYTES, RESERVED_OWNER_IDS};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    check(&raw);
});

fn model(raw: &str) -> bool {
    // Unicode's format characters (category Cf), written out from the Unicode Character
    // Database rather than taken from the crate the parser uses.
    let format = |c: char| {
        matches!(c,
            '\u{AD}' | '\u{600}'..='\u{605}' | '\u{61C}' | '\u{6DD}' | '\u{70F}'
            | '\u{890}'..='\u{891}' | '\u{8E2}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
    };
    !raw.is_empty()
        && raw.len() <= OWNER_ID_MAX_BYTES
        && !raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || format(c))
        && !RESERVED_OWNER_IDS.contains(&raw)
}

fn check(raw: &str) {
    let parsed = OwnerId::parse(raw);
    assert_eq!(parsed.is_ok(), model(raw), "parse disagrees with the model");
    assert_eq!(raw.parse::<OwnerId>().ok(), parsed.clone().ok());
    assert_eq!(OwnerId::try_from(raw).ok(), parsed.clone().ok());
    assert_eq!(OwnerId::try_from(raw.to_owned()).ok(), parsed.clone().ok());
    let json = serde_json::to_string(raw).expect("a str serializes");
    let via_serde = serde_json::from_str::<OwnerId>(&json).ok();
    assert_eq!(via_serde, parsed.clone().ok(), "serde disagrees with parse");
    if let Ok(id) = parsed {
        assert_eq!(id.as_str(), raw);
        assert_eq!(id.to_string(), raw);
        let encoded = serde_json::to_string(&id).expect("an id serializes");
        assert_eq!(encoded, json);
        assert_eq!(serde_json::from_str::<OwnerId>(&encoded).ok(), Some(id));
    }
}
