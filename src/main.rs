//! pqrelay relay binary (placeholder).
fn main() {}
