//! Memory used by the in-memory store per pair: 100,000 pairs, measured as the growth of the
//! process's resident set. Each layout runs in a child process of this test binary (running
//! only this test) so the measurements share neither an allocator nor the process with the
//! other tests. Run with `--nocapture` to see the numbers.

use std::process::Command;

use pqrelay::store::{MemoryConfig, MemoryStore, PairStore};

use crate::util::store_suite::{client, pid, state};

const PAIRS: u32 = 100_000;
const LAYOUT_ENV: &str = "PQRELAY_STORE_SIZE_LAYOUT";
/// The budget per stored pair.
const BUDGET: f64 = 300.0;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Fills a store with `PAIRS` pairs, `per_client` per client id, and prints the growth.
fn measure(per_client: u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let before = resident_bytes();
    let store = MemoryStore::new(&MemoryConfig::new(25));
    rt.block_on(async {
        for c in 0..PAIRS / per_client {
            let pairs: Vec<_> = (0..per_client)
                .map(|i| (pid(c * per_client + i), state(0, 1)))
                .collect();
            store.insert(&client(c), &pairs).await.unwrap();
        }
    });
    assert_eq!(store.len(), PAIRS as usize);
    let after = resident_bytes();
    println!(
        "bytes/pair={:.1}",
        (after - before) as f64 / f64::from(PAIRS)
    );
    drop(store);
}

#[test]
fn memory_bytes_per_pair_within_budget() {
    if let Ok(layout) = std::env::var(LAYOUT_ENV) {
        measure(layout.parse().expect("pairs per client"));
        return;
    }
    if !std::path::Path::new("/proc/self/statm").exists() {
        eprintln!("skipped: no /proc/self/statm on this system");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    // The test's name within the binary: `store_memory_size::memory_bytes_per_pair_within_budget`.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let name = format!("{module}::memory_bytes_per_pair_within_budget");
    for per_client in [25u32, 5, 1] {
        let out = Command::new(&exe)
            .args(["--exact", &name, "--nocapture"])
            .env(LAYOUT_ENV, per_client.to_string())
            .output()
            .expect("child test");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {text}");
        let bytes: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("bytes/pair="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no measurement in {text}"));
        println!("memory store, {PAIRS} pairs, {per_client} per client: {bytes:.1} bytes/pair");
        assert!(
            bytes < BUDGET,
            "{bytes} bytes per pair ({per_client} per client)"
        );
    }
}
