//! The relay's integration tests, one binary (one link of Pingora instead of two dozen). Each
//! module is one area, tested through the real `pqrelay` binary on loopback (processes from
//! `pqrelay_testkit`) or, for the stores, through the library; shared helpers are in [`util`].
//!
//! The tests share this process and run in parallel threads, so none sets environment
//! variables or changes the current directory, each picks its own free ports, and tests that
//! load the machine or assert on time take their turn through [`util::machine`].
//! Run one area with `cargo test --test relay -- core_config::`.

// The turns of `util::machine` are std `RwLock` guards held for a whole test on purpose (each
// test runs on its own runtime; the guard orders tests, it guards no data).
#![allow(clippy::await_holding_lock)]

mod util;

mod core_config;
mod core_demo;
mod core_proxy;
mod core_routes;
mod core_server;
mod core_upstreams;
mod domains;
mod exchange_memory;
mod exchange_redis;
mod faults_disconnect;
mod faults_failover;
mod faults_redis;
mod faults_upstream;
mod fuzz_relay;
mod ops_metrics;
mod ops_upgrade;
mod outbound;
mod outbound_attacker;
mod outbound_vendor;
mod protocol2;
mod security_addresses;
mod security_framing;
mod security_limits;
mod security_logs;
mod security_pairing_flood;
mod security_smuggling;
mod security_state;
mod store_memory;
mod store_memory_size;
mod store_redis;
mod store_redis_measure;
