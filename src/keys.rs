//! The relay's keys as an operator handles them: `pqrelay keygen` writes one, the relay logs
//! their fingerprints at startup, and relays sharing one Redis compare theirs (PROTOCOL.md §4).

use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use pqrelay_protocol::relay_key::key_value_from_random;
use pqrelay_protocol::RelayKey;

use crate::config::show::relay_key_fingerprints;
use crate::config::Config;
use crate::store::PairStore;

/// Writes a new random relay key value to `out` (readable by its owner only; an existing file
/// is kept unless `force`) and returns its fingerprint.
pub fn keygen(out: &Path, force: bool) -> anyhow::Result<String> {
    let mut random = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(random.as_mut()).context("the random generator failed")?;
    let value = zeroize::Zeroizing::new(key_value_from_random(&random));
    let key = RelayKey::from_value(&value)
        .map_err(|e| anyhow::anyhow!("generated an invalid key: {e}"))?;
    if out.exists() && !force {
        bail!("{} exists; pass --force to replace it", out.display());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    writeln!(file, "{}", value.as_str())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(key.id().fingerprint())
}

/// One line per site and relay key, for the startup log and `check-config`.
pub fn describe(config: &Config) -> Vec<String> {
    let sites = std::iter::once((None, &config.site)).chain(
        config
            .domain_map
            .iter()
            .flatten()
            .map(|(host, site)| (Some(host.as_str()), site)),
    );
    let mut lines = Vec::new();
    for (host, site) in sites {
        if host.is_none() && config.domain_map.is_some() {
            continue;
        }
        let of = host.map(|h| format!(" of {h}")).unwrap_or_default();
        for fp in relay_key_fingerprints(site) {
            lines.push(format!("relay key{of}: {fp}"));
        }
    }
    lines
}

/// Announces each site's relay key fingerprints to the shared store and returns a warning
/// for every site whose fingerprints another relay announced differently (`announce`: false
/// only compares, for `check-config`). Nothing for a memory store.
pub async fn compare_with_fleet(
    config: &Config,
    store: &dyn PairStore,
    announce: bool,
) -> Vec<String> {
    let sites = std::iter::once(("_", &config.site)).chain(
        config
            .domain_map
            .iter()
            .flatten()
            .map(|(host, site)| (host.as_str(), site)),
    );
    let mut warnings = Vec::new();
    for (name, site) in sites {
        let ours = match site.relay_key_set().0 {
            Ok(keys) => keys.fingerprints().join(","),
            Err(_) => continue,
        };
        let theirs = match store
            .relay_keys(name, announce.then_some(ours.as_str()))
            .await
        {
            Ok(theirs) => theirs,
            Err(e) => {
                log::debug!("relay keys not compared with the fleet: {e}");
                continue;
            }
        };
        if let Some(theirs) = theirs.filter(|t| *t != ours) {
            let site = if name == "_" {
                String::new()
            } else {
                format!(" for {name}")
            };
            warnings.push(format!(
                "warning: a relay sharing this state store announced other relay keys{site} \
                 ({theirs}) than this one ({ours}): a client pinned to one key fails on relays \
                 without it, and pairs made with a key fail (569) on relays without it; give \
                 every relay the same RELAY_KEYS"
            ));
        }
    }
    warnings
}
