//! Injected faults: errors and latency spikes on the round trips to the server, by rate and by
//! operation, reproducible from a seed.
//!
//! `--faults eio:0.01:read+write,estale:0.002:lookup+getattr,spike=200:0.01` reads as: 1 % of
//! READs and WRITEs fail with `EIO`, 0.2 % of LOOKUPs and GETATTRs with `ESTALE`, and 1 % of
//! every round trip takes 200 ms longer. Each rule is `WHAT:RATE[:OPS]` where `WHAT` is `eio`,
//! `enospc`, `estale`, `eacces` or `spike=<milliseconds>`, `RATE` a fraction from 0 to 1, and
//! `OPS` a `+`-separated list of operations (see [`Rpc::name`]) or the groups `meta`, `data`
//! (read, write, commit) and `all` (the default). An injected error replaces the operation: the
//! server never sees it.
//!
//! The n-th round trip's fate is a hash of the seed, n and the rule, so the same seed and the
//! same sequence of round trips give the same faults. SIGUSR1 stops injecting, SIGUSR2 starts
//! again (the soak's "faults stop, does it recover?").

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use crate::latency::Rpc;

/// What one rule does to a round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with this errno and never reaches the server.
    Error(i32),
    /// The operation takes this much longer.
    Spike(Duration),
}

#[derive(Clone, Debug)]
struct Rule {
    fault: Fault,
    rate: f64,
    ops: Vec<Rpc>,
}

/// The rules, the seed, and whether injection is on.
#[derive(Debug)]
pub struct Faults {
    rules: Vec<Rule>,
    seed: u64,
    rolls: AtomicU64,
    on: AtomicBool,
}

impl Faults {
    fn new(rules: Vec<Rule>, seed: u64) -> Self {
        Self {
            rules,
            seed,
            rolls: AtomicU64::new(0),
            on: AtomicBool::new(true),
        }
    }

    /// Parses `--faults` (see the module's documentation).
    pub fn parse(spec: &str, seed: u64) -> Result<Self, String> {
        let mut rules = Vec::new();
        for rule in spec.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let mut parts = rule.split(':');
            let what = parts.next().unwrap_or_default();
            let fault = match what {
                "eio" => Fault::Error(libc::EIO),
                "enospc" => Fault::Error(libc::ENOSPC),
                "estale" => Fault::Error(libc::ESTALE),
                "eacces" => Fault::Error(libc::EACCES),
                spike if spike.starts_with("spike=") => {
                    let ms: f64 = spike["spike=".len()..]
                        .parse()
                        .map_err(|_| format!("bad spike length in {rule:?}"))?;
                    Fault::Spike(Duration::from_secs_f64(ms / 1000.0))
                }
                _ => return Err(format!("unknown fault {what:?} in {rule:?}")),
            };
            let rate: f64 = parts
                .next()
                .and_then(|r| r.parse().ok())
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("the rate of {rule:?} must be a number from 0 to 1"))?;
            let ops = match parts.next() {
                None => Rpc::ALL.to_vec(),
                Some(list) => parse_ops(list).map_err(|e| format!("{e} in {rule:?}"))?,
            };
            if parts.next().is_some() {
                return Err(format!("too many parts in {rule:?}"));
            }
            rules.push(Rule { fault, rate, ops });
        }
        Ok(Self::new(rules, seed))
    }

    /// Whether any rule is set.
    pub fn any(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Turns injection on or off.
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// What happens to the next round trip of `rpc`, if anything.
    pub fn roll(&self, rpc: Rpc) -> Option<Fault> {
        if self.rules.is_empty() || !self.on.load(Ordering::Relaxed) {
            return None;
        }
        let n = self.rolls.fetch_add(1, Ordering::Relaxed);
        self.rules.iter().enumerate().find_map(|(i, rule)| {
            let hit = rule.ops.contains(&rpc) && uniform(self.seed, n, i as u64) < rule.rate;
            hit.then_some(rule.fault)
        })
    }
}

fn parse_ops(list: &str) -> Result<Vec<Rpc>, String> {
    let mut ops = Vec::new();
    for name in list.split('+') {
        match name {
            "all" => ops.extend(Rpc::ALL),
            "data" => ops.extend([Rpc::Read, Rpc::Write, Rpc::Commit]),
            "meta" => ops.extend(
                Rpc::ALL
                    .into_iter()
                    .filter(|r| !matches!(r, Rpc::Read | Rpc::Write | Rpc::Commit)),
            ),
            other => {
                ops.push(Rpc::named(other).ok_or_else(|| format!("unknown operation {other:?}"))?)
            }
        }
    }
    Ok(ops)
}

/// A number in [0, 1) from the seed, the roll and the rule (SplitMix64 of their mix).
fn uniform(seed: u64, roll: u64, rule: u64) -> f64 {
    let mut z =
        seed ^ roll.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ rule.wrapping_mul(0xd1b5_4a32_d192_ed03);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_refuses_nonsense() {
        let faults = Faults::parse("eio:0.5:read+write, spike=200:1, estale:0.1:meta", 7).unwrap();
        assert_eq!(faults.rules.len(), 3);
        assert_eq!(faults.rules[0].ops, vec![Rpc::Read, Rpc::Write]);
        assert_eq!(
            faults.rules[1].fault,
            Fault::Spike(Duration::from_millis(200))
        );
        assert_eq!(faults.rules[1].ops.len(), Rpc::ALL.len());
        assert!(!faults.rules[2].ops.contains(&Rpc::Read));
        for bad in [
            "eio",
            "eio:2",
            "boom:0.1",
            "eio:0.1:teleport",
            "spike=x:0.1",
            "eio:0.1:read:x",
        ] {
            assert!(Faults::parse(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_at_the_stated_rate() {
        let sequence = |seed| {
            let faults = Faults::parse("eio:0.1:read", seed).unwrap();
            (0..10_000)
                .map(|_| faults.roll(Rpc::Read).is_some())
                .collect::<Vec<_>>()
        };
        let a = sequence(1);
        assert_eq!(a, sequence(1));
        assert_ne!(a, sequence(2));
        let hits = a.iter().filter(|hit| **hit).count();
        assert!((800..1200).contains(&hits), "{hits} of 10,000 at 10 %");
        let faults = Faults::parse("eio:1:read", 1).unwrap();
        assert_eq!(faults.roll(Rpc::Lookup), None, "only the operations named");
        faults.set_on(false);
        assert_eq!(faults.roll(Rpc::Read), None, "off");
        faults.set_on(true);
        assert_eq!(faults.roll(Rpc::Read), Some(Fault::Error(libc::EIO)));
    }
}
