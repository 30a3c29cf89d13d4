//! Replays the fuzz corpus kept in `fuzz/corpus/handlers` and every input that ever failed
//! (`fuzz/regressions`) through the oracle, as part of the normal test run.

use std::path::Path;

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn the_kept_corpus_passes_the_oracle() {
    let corpus = inputs("corpus/handlers");
    assert!(corpus.len() >= 20, "the kept corpus is missing");
    for (_name, data) in corpus {
        conformance::check(&data);
    }
}

#[test]
fn every_input_that_ever_failed_passes_now() {
    for (_name, data) in inputs("regressions") {
        conformance::check(&data);
    }
}

#[test]
fn the_oracle_rejects_answers_that_break_the_contract() {
    use conformance::{verify_answer, Function};
    let error = br#"{"error":{"code":"invalid_id","message":"Bad id."}}"#;
    verify_answer(Function::Get, 400, error);
    verify_answer(Function::Delete, 204, b"");
    let broken: [(i64, &[u8]); 5] = [
        (418, error),
        (400, b"not json"),
        (404, br#"{"error":{"code":"teapot","message":"x"}}"#),
        (500, br#"{"error":{"code":"internal_error","message":"x"}}"#),
        (201, b"<html>"),
    ];
    for (status, body) in broken {
        let caught = std::panic::catch_unwind(|| verify_answer(Function::Post, status, body));
        assert!(
            caught.is_err(),
            "{status} {:?} passed",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn hostile_inputs_pass_the_oracle() {
    let mut input = conformance::Input {
        function: conformance::Function::Get,
        method: "GET".into(),
        raw_path: "/messages/..%2F..%2Fetc".into(),
        path_id: Some("../../etc".into()),
        raw_query: "limit=1e9&after=..".into(),
        headers: vec![("content-type".into(), "text/plain".into())],
        cookies: Some(vec!["a=b".into()]),
        body: Some("not base64 !!".into()),
        base64: true,
        seed_message: true,
    };
    for function in [
        conformance::Function::Get,
        conformance::Function::Post,
        conformance::Function::Delete,
    ] {
        input.function = function;
        for path_id in [None, Some("../../etc".to_owned()), Some("x".repeat(10_000))] {
            input.path_id = path_id;
            conformance::check_input(&input);
        }
    }
}

#[test]
fn the_oracle_checks_the_order_of_listings() {
    use conformance::{verify_listing_order, Function, Input};
    let input = |raw_query: &str| Input {
        function: Function::Get,
        method: "GET".into(),
        raw_path: "/messages".into(),
        path_id: None,
        raw_query: raw_query.into(),
        headers: Vec::new(),
        cookies: None,
        body: None,
        base64: false,
        seed_message: false,
    };
    let (a, b) = (
        "01936b2e-1e2d-7c3a-8b4c-5d6e7f8a9b0c",
        "01936b2e-1e2e-7c3a-8b4c-5d6e7f8a9b0c",
    );
    let page = |first: &str, second: &str, next: Option<&str>| {
        serde_json::json!({ "messages": [{ "id": first }, { "id": second }], "next": next })
            .to_string()
            .into_bytes()
    };
    verify_listing_order(&input("limit=2"), 200, &page(a, b, Some(b)));
    verify_listing_order(&input("order=desc"), 200, &page(b, a, None));
    verify_listing_order(&input("%6Frder=desc"), 200, &page(b, a, Some(a)));
    for (query, body) in [
        ("", page(b, a, None)),
        ("order=desc", page(a, b, None)),
        ("order=asc", page(a, a, None)),
        ("", page(a, b, Some(a))),
    ] {
        let caught = std::panic::catch_unwind(|| verify_listing_order(&input(query), 200, &body));
        assert!(
            caught.is_err(),
            "{query:?} {}",
            String::from_utf8_lossy(&body)
        );
    }
    // Then run real listings in both orders through the oracle, on a store with messages.
    for query in ["order=desc&limit=3", "limit=3", "order=asc&limit=1"] {
        let mut input = input(query);
        input.seed_message = true;
        for _ in 0..4 {
            conformance::check_input(&input);
        }
    }
}
