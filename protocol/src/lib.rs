//! pqrelay protocol v1 (placeholder until the crate lands).
