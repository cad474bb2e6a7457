//! Pairing code normalization (`PairingCode::parse`). Properties checked on every input:
//!
//! - `parse` never panics, and accepts exactly the inputs a plain model accepts: after
//!   removing ASCII whitespace and `-` and upper-casing ASCII letters, exactly 8 symbols
//!   of the pairing alphabet remain, and the code is those symbols;
//! - parsing is idempotent and insensitive to the display dash and to case:
//!   `parse(display(c)) == c` and `parse(lowercase(c)) == c`;
//! - a code generated from the input's first 5 bytes round-trips through its display
//!   form; `PairingSeed::from_hex` round-trips what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ownership_core::pairing::{CODE_LEN, PAIRING_ALPHABET, PairingCode, PairingSeed};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    check_parse(&input);
    check_generated(data);
    if let Ok(seed) = PairingSeed::from_hex(&input) {
        assert_eq!(seed.to_hex(), input.to_ascii_lowercase());
        assert_eq!(PairingSeed::from_hex(&seed.to_hex()).ok(), Some(seed));
    }
});

/// What `parse` should return, written independently of it.
fn model(input: &str) -> Option<String> {
    let symbols: String = input
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = symbols.chars().count() == CODE_LEN
        && symbols.chars().all(|c| PAIRING_ALPHABET.contains(c));
    valid.then_some(symbols)
}

fn check_parse(input: &str) {
    let parsed = PairingCode::parse(input);
    assert_eq!(
        parsed.as_ref().ok().map(|code| code.as_str().to_owned()),
        model(input),
        "parse disagrees with the normalization model"
    );
    if let Ok(code) = parsed {
        check_round_trips(&code);
    }
}

fn check_round_trips(code: &PairingCode) {
    let display = code.display();
    assert_eq!(display.len(), CODE_LEN + 1);
    assert_eq!(display.replace('-', ""), code.as_str());
    assert_eq!(display.find('-'), Some(CODE_LEN / 2));
    assert!(PairingCode::parse(&display).is_ok_and(|again| again == *code));
    assert!(PairingCode::parse(code.as_str()).is_ok_and(|again| again == *code));
    let lower = code.as_str().to_ascii_lowercase();
    assert!(PairingCode::parse(&lower).is_ok_and(|again| again == *code));
    let spaced = format!(" {} ", display.replace('-', " - "));
    assert!(PairingCode::parse(&spaced).is_ok_and(|again| again == *code));
}

fn check_generated(data: &[u8]) {
    let mut bytes = data.iter().copied().cycle();
    if data.is_empty() {
        return;
    }
    let code = PairingCode::generate(&mut |buf: &mut [u8]| {
        for slot in buf.iter_mut() {
            *slot = bytes.next().unwrap_or(0);
        }
    });
    assert_eq!(code.as_str().len(), CODE_LEN);
    assert!(code.as_str().chars().all(|c| PAIRING_ALPHABET.contains(c)));
    check_round_trips(&code);
}
