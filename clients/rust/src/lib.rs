//! pqrelay Rust client (placeholder until the crate lands).
