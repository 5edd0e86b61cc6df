//! Every file path the docs cite exists: README, docs/, the examples' README, the scripts'
//! headers and the rustdoc in src/ (a renamed or removed file fails this, not a reader).

use std::{fs, path::Path};

const ROOTS: [&str; 6] = ["examples", "docs", "scripts", "tests", "src", "benches"];
const ENDINGS: [&str; 10] = [
    ".rs", ".md", ".sh", ".py", ".png", ".html", ".js", ".mjs", ".json", ".ts",
];

/// Paths like `examples/chat/main.rs` in `text`.
fn cited(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    for root in ROOTS {
        let needle = format!("{root}/");
        let mut from = 0;
        while let Some(at) = text[from..].find(&needle) {
            let start = from + at;
            from = start + needle.len();
            // A path starts the word: not `foo_examples/`, not `../shared/...`.
            if start > 0 {
                let before = bytes[start - 1];
                if before.is_ascii_alphanumeric() || matches!(before, b'_' | b'.' | b'-') {
                    continue;
                }
                if before == b'/' && !text[..start].ends_with("/main/") {
                    continue;
                }
            }
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c)))
                .map_or(text.len(), |e| start + e);
            let path = text[start..end].trim_end_matches('.');
            if ENDINGS.iter().any(|e| path.ends_with(e)) {
                found.push(path.to_owned());
            }
        }
    }
    found
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_path_the_docs_cite_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources: Vec<std::path::PathBuf> = [
        "README.md",
        "docs/PERFORMANCE.md",
        "docs/SCALING.md",
        "examples/README.md",
        "scripts/scale-out.sh",
        "scripts/topic-scale.py",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    files(&root.join("src"), &mut sources);
    let mut missing = Vec::new();
    let mut checked = 0;
    for source in &sources {
        let text = fs::read_to_string(source).unwrap();
        for path in cited(&text) {
            checked += 1;
            if !root.join(&path).exists() {
                missing.push(format!(
                    "{} cites {path}",
                    source.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} citations found: the scan is broken"
    );
    assert!(missing.is_empty(), "missing files:\n{}", missing.join("\n"));
}

#[test]
fn the_scan_finds_paths_and_skips_what_is_not_one() {
    assert_eq!(
        cited("see `examples/chat/main.rs`, docs/SCALING.md. and ../shared/bench/run.sh"),
        ["examples/chat/main.rs", "docs/SCALING.md"]
    );
    assert_eq!(
        cited("[x](https://github.com/o/r/blob/main/docs/PERFORMANCE.md) my_src/a.rs src/"),
        ["docs/PERFORMANCE.md"]
    );
}
