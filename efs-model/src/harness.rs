//! A test runner for scenarios that need the model (a custom harness, `harness = false`): each
//! scenario runs, or is reported `SKIPPED` with the reason the model is unavailable here, never
//! `ok` without having run. With `EFS_MODEL_REQUIRED=1` (CI, as root) an unavailable model fails.

/// Runs `scenarios` (name, function) as `cargo test` would report them; the arguments that are
/// not options filter by name, as libtest's do. Exits the process with the verdict.
pub fn run(scenarios: &[(&str, fn())]) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let list = std::env::args().any(|a| a == "--list");
    let chosen: Vec<&(&str, fn())> = scenarios
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if list {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        std::process::exit(0);
    }
    let unavailable = crate::unavailable();
    let required = std::env::var("EFS_MODEL_REQUIRED").is_ok_and(|v| v == "1");
    println!("\nrunning {} tests", chosen.len());
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, scenario) in &chosen {
        if let Some(why) = &unavailable {
            if required {
                println!("test {name} ... FAILED (EFS_MODEL_REQUIRED=1, but the model {why})");
                failed += 1;
            } else {
                println!("test {name} ... SKIPPED (the EFS client model {why})");
                skipped += 1;
            }
            continue;
        }
        match std::panic::catch_unwind(scenario) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; {skipped} skipped; 0 measured; {} filtered out\n",
        scenarios.len() - chosen.len()
    );
    std::process::exit(i32::from(failed > 0));
}
