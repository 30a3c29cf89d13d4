//! Assembles the message wall from `page/wall.{html,css,js}` and derives its
//! Content-Security-Policy from the exact bytes of the inline style and script, so the hashes in
//! the policy can never drift from the code they allow.

use std::{env, fs, path::Path};

use base64::Engine;
use sha2::{Digest, Sha256};

const STYLE: &str = "/*STYLE*/";
const SCRIPT: &str = "/*SCRIPT*/";

fn main() {
    for file in ["page/wall.html", "page/wall.css", "page/wall.js"] {
        println!("cargo::rerun-if-changed={file}");
    }
    let html = read("page/wall.html");
    let css = read("page/wall.css");
    let js = read("page/wall.js");
    for (marker, count) in [
        (STYLE, html.matches(STYLE).count()),
        (SCRIPT, html.matches(SCRIPT).count()),
    ] {
        assert_eq!(count, 1, "page/wall.html must hold {marker} exactly once");
    }
    // A closing tag inside the inlined code would end the element early.
    assert!(!css.contains("</"), "page/wall.css must not contain \"</\"");
    assert!(!js.contains("</"), "page/wall.js must not contain \"</\"");
    let page = html.replace(STYLE, &css).replace(SCRIPT, &js);
    let csp = format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(&js),
        hash(&css)
    );
    let out = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    fs::write(out.join("wall.html"), page).expect("writing wall.html");
    fs::write(out.join("wall-csp.txt"), csp).expect("writing wall-csp.txt");
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// A CSP hash source: `sha256-<base64 of the SHA-256 of the element's text>`.
fn hash(code: &str) -> String {
    let digest = Sha256::digest(code.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}
