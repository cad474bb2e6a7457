//! Benchmarks of the ownership workspace. The code is in `benches/suite.rs`; run it with
//! `cargo xtask bench`, which turns its output into `docs/benchmarks.md` (or `cargo xtask
//! bench --quick`, which writes its report under `target/bench/` instead). Every result
//! is a ratio against a baseline measured in the same run; nothing here asserts a timing.
