//! pqrelay benchmark (placeholder).
fn main() {}
