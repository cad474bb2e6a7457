//! The operating system's random generator as a [`RandomSource`].

use ownership_core::RandomSource;

/// Random bytes from the operating system (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        // The OS generator does not fail on supported Linux kernels; if it ever did, a
        // token built from zeros would be guessable, so refuse to go on.
        #[expect(
            clippy::panic,
            reason = "continuing without randomness would mint guessable secrets"
        )]
        if getrandom::fill(buf).is_err() {
            panic!("the operating system's random generator failed");
        }
    }
}
