//! A runner for tests that are whole scenarios (a custom harness, `harness = false`): processes
//! the test starts itself, mounts, root-only set-ups. A scenario that cannot run here is reported
//! `SKIPPED` with its reason, never `ok`: either every scenario, when a precondition fails (say,
//! no FUSE), or one scenario that calls [`skip`] and returns.

use std::sync::{Mutex, PoisonError};

/// Set by a scenario that cannot run here, with the reason.
static SKIPPED: Mutex<Option<String>> = Mutex::new(None);

/// Marks the running scenario as not run (it returns right after): reported `SKIPPED: reason`.
pub fn skip(reason: impl Into<String>) {
    *SKIPPED.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.into());
}

/// Why the scenarios cannot run here, if they cannot, and whether that is a failure (where they
/// must run, as in CI) rather than a skip.
#[derive(Debug, Default)]
pub struct Precondition {
    pub unavailable: Option<String>,
    pub required: bool,
}

/// Runs `scenarios` (name, function) as `cargo test` would report them; the arguments that are
/// not options filter by name, as libtest's do, and `--list` lists them. Exits the process with
/// the verdict: failed if any scenario failed (or could not run where it was required).
pub fn run(scenarios: &[(&str, fn())], precondition: Precondition) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen: Vec<&(&str, fn())> = scenarios
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        std::process::exit(0);
    }
    println!("\nrunning {} tests", chosen.len());
    let (mut passed, mut failed) = (0, 0);
    let mut skipped = Vec::new();
    for (name, scenario) in &chosen {
        if let Some(why) = &precondition.unavailable {
            if precondition.required {
                println!("test {name} ... FAILED (required here, but {why})");
                failed += 1;
            } else {
                println!("test {name} ... SKIPPED: {why}");
                skipped.push(*name);
            }
            continue;
        }
        match std::panic::catch_unwind(scenario) {
            Ok(()) => match SKIPPED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                Some(reason) => {
                    println!("test {name} ... SKIPPED: {reason}");
                    skipped.push(*name);
                }
                None => {
                    println!("test {name} ... ok");
                    passed += 1;
                }
            },
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    // A skipped scenario is counted with libtest's word for a test that did not run.
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; {} ignored; 0 measured; {} filtered out",
        skipped.len(),
        scenarios.len() - chosen.len()
    );
    if !skipped.is_empty() {
        println!("SKIPPED (not run, not passed): {}", skipped.join(", "));
    }
    println!();
    std::process::exit(i32::from(failed > 0));
}
