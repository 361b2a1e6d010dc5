//! Criterion benches (placeholder until filled in).
fn main() {}
