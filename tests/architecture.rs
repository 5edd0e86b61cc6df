//! The shape of `src/`: the import graph between its files has no cycle, transports and the
//! hub never depend on a policy layer (nor policy layers on a transport), modules import from
//! the module that defines a thing rather than from the crate root, and no file is too long
//! to read whole.
//!
//! The graph is read from the source text: every `use` tree and every `crate::`, `super::`
//! and `self::` path outside comments and test modules, resolved to the file that holds the
//! named module (a `mod.rs` for a directory). A module's own `mod x;` declarations and its
//! re-exports (`pub use`, which give users another path to a name) are not edges.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Top-level modules that are policy layers: optional layers on a request or a stream.
const POLICY: &[&str] = &[
    "origin",
    "auth_ticket",
    "last_event_id",
    "limit",
    "drain",
    "heartbeat",
];
/// Top-level modules that are transports, and the hub.
const TRANSPORTS_AND_HUB: &[&str] = &["sse", "long_poll", "ws", "negotiate", "hub"];

/// The longest file allowed in `src/` and `examples/`.
const MAX_LINES: usize = 600;

/// A module path (`["ws", "driver"]`) and its file.
fn modules(root: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The source without its `#[cfg(test)]` modules: test code is not part of the graph (and
/// `super` inside an inline module means the file itself).
fn without_test_modules(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else {
            return out;
        };
        // Only a module: `#[cfg(test)] mod x { .. }` (or `mod x;`, kept as is).
        let head = &after[..open];
        if !head.contains("mod ") || head.contains(';') {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The source without comments, strings and char literals (their text is not code).
fn code_of(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x' or '\n'), not a lifetime.
            let mut j = i + 1;
            if b[j] == b'\\' {
                j += 1;
            }
            while j < b.len() && b[j] != b'\'' {
                j += 1;
            }
            i = j + 1;
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every path a `use` tree names, flattened: `crate::{a, b::{c, d}}` gives `crate::a`,
/// `crate::b::c`, `crate::b::d`.
fn flatten_use(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let close = tree.rfind('}').unwrap();
        let inner = &tree[open + 1..close];
        let prefix = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    flatten_use(&inner[start..i], &prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        flatten_use(&inner[start..], &prefix, out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap().trim();
        out.push(join(prefix, path));
    }
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (_, true) => prefix.to_owned(),
        _ => format!("{prefix}::{path}"),
    }
}

/// The code without its re-exports (`pub use ..;`, `pub(crate) use ..;`): they give another
/// path to a name for the module's users, not something the module's own code depends on.
fn without_reexports(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    loop {
        let next = ["pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .filter_map(|p| rest.find(p))
            .min();
        let Some(at) = next else { break };
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').map_or(rest.len(), |e| at + e + 1);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The paths a file names: its `use` trees, and `crate::`/`super::`/`self::` paths in code.
fn paths_in(code: &str) -> Vec<String> {
    let code = &without_reexports(code);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        flatten_use(&rest[..end], "", &mut out);
        rest = &rest[end..];
    }
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            let path = code[at..end].trim_end_matches(':');
            // A bare `crate::{..}` is a use tree, read above.
            if path.contains("::") {
                out.push(path.to_owned());
            }
        }
    }
    out
}

/// The module file a path leads into: the longest prefix that is a module.
fn resolve(
    path: &str,
    here: &[String],
    is_dir_module: bool,
    mods: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    let mut base: Vec<String> = match parts.first().copied() {
        Some("crate") => {
            parts.remove(0);
            Vec::new()
        }
        Some("super") | Some("self") => {
            // `self` of a file `a/b.rs` is `a::b`; its `super` is `a` (for `a/mod.rs`,
            // `self` is `a` and `super` is the crate).
            let mut base = here.to_vec();
            while let Some(&p) = parts.first() {
                match p {
                    "self" => {}
                    "super" => {
                        base.pop();
                    }
                    _ => break,
                }
                parts.remove(0);
            }
            let _ = is_dir_module;
            base
        }
        _ => return None,
    };
    let mut best = base.clone();
    for p in parts {
        base.push(p.to_owned());
        if mods.contains_key(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

fn graph() -> (
    BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    Vec<(Vec<String>, String)>,
) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&root);
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut root_imports = Vec::new();
    for (module, file) in &mods {
        let code = without_test_modules(&code_of(&std::fs::read_to_string(file).unwrap()));
        let is_dir = file.ends_with("mod.rs") || file.ends_with("lib.rs");
        for path in paths_in(&code) {
            let Some(target) = resolve(&path, module, is_dir, &mods) else {
                continue;
            };
            // A parent re-exporting or declaring its children is not a dependency loop.
            if target.starts_with(module) && target.len() > module.len() && is_dir {
                continue;
            }
            if target.is_empty() && !module.is_empty() && module[0] != "test_helpers" {
                root_imports.push((module.clone(), path.clone()));
            }
            if &target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    (edges, root_imports)
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn the_import_graph_of_src_has_no_cycle() {
    let (edges, _) = graph();
    // Depth-first search for a back edge; report the cycle found.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = stack.iter().position(|n| n == node) {
            let cycle: Vec<String> = stack[at..]
                .iter()
                .chain(std::iter::once(node))
                .map(|n| name(n))
                .collect();
            cycles.push(cycle.join(" -> "));
            return;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done, cycles);
        }
        stack.pop();
        done.insert(node.clone());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn transports_and_the_hub_never_import_a_policy_layer_nor_the_reverse() {
    let (edges, _) = graph();
    let mut wrong = Vec::new();
    for (from, tos) in &edges {
        let Some(from_top) = from.first() else {
            continue;
        };
        for to in tos {
            let Some(to_top) = to.first() else { continue };
            let down = TRANSPORTS_AND_HUB.contains(&from_top.as_str())
                && POLICY.contains(&to_top.as_str());
            // A policy layer may use the hub (the Redis ticket store shares its connection),
            // never a transport.
            let up = POLICY.contains(&from_top.as_str())
                && TRANSPORTS_AND_HUB.contains(&to_top.as_str())
                && to_top != "hub";
            if down || up {
                wrong.push(format!("{} -> {}", name(from), name(to)));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn modules_import_from_the_defining_module_not_the_crate_root() {
    let (_, root_imports) = graph();
    let wrong: Vec<String> = root_imports
        .iter()
        .map(|(m, p)| format!("{} uses {p}", name(m)))
        .collect();
    assert!(
        wrong.is_empty(),
        "crate-root imports:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_file_is_too_long_to_read_whole() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    let mut stack = vec![root.join("src"), root.join("examples")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > MAX_LINES {
                    long.push(format!("{}: {lines} lines", path.display()));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// The checker finds what it claims to find, on made-up sources.
#[test]
fn the_checker_sees_use_trees_and_paths_but_not_comments_or_strings() {
    let code = code_of(
        "use crate::{a, b::{c, d as e}};\n// use crate::commented;\n/* crate::block */\n\
         pub use crate::reexported::Name;\n\
         fn f() { let s = \"crate::in_string\"; super::sibling::g(); crate::x::y(); }",
    );
    let mut paths = paths_in(&code);
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths,
        [
            "crate::a",
            "crate::b::c",
            "crate::b::d",
            "crate::x::y",
            "super::sibling::g"
        ]
    );
}
