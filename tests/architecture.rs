//! The floor plan of `src/` (docs/ARCHITECTURE.md), checked on the code as `syn` parses it:
//! every `use` tree and every `crate::`/`super::`/`self::` path outside test modules,
//! resolved to the file of the module it names. A parent declaring or re-exporting its own
//! children is not an edge; a re-export (`pub use`) is not a dependency of the module's code.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};
use syn::visit::Visit;

/// The model: what everything else stands on; it imports only itself.
const MODEL: &[&str] = &[
    "error",
    "event",
    "cursor",
    "rejection",
    "push",
    "reason",
    "json",
    "topic",
    "principal",
    "sync",
];
/// The transports.
const TRANSPORTS: &[&str] = &["sse", "long_poll", "ws", "negotiate"];
/// Policy layers: optional layers on a request or a stream.
const POLICY: &[&str] = &[
    "origin",
    "auth_ticket",
    "last_event_id",
    "limit",
    "drain",
    "heartbeat",
];
/// The longest file allowed in `src/` and `examples/`.
const MAX_LINES: usize = 600;

type Module = Vec<String>;

/// Every module of `src/` and its file (`["ws", "driver"]` -> `src/ws/driver.rs`).
fn modules(root: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut parts: Module = path
                    .strip_prefix(root)
                    .unwrap()
                    .iter()
                    .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                    .collect();
                if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                    parts.pop();
                }
                out.insert(parts, path);
            }
        }
    }
    out
}

/// The paths a file's code names, and the crate paths it re-exports with `pub use`.
#[derive(Default)]
struct Paths {
    used: Vec<Vec<String>>,
    reexported: Vec<Vec<String>>,
}

fn is_test_module(item: &syn::ItemMod) -> bool {
    item.attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string() == "test")
    })
}

fn flatten(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push([prefix.clone(), vec![n.ident.to_string()]].concat()),
        syn::UseTree::Rename(r) => out.push([prefix.clone(), vec![r.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| flatten(t, prefix, out)),
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_module(item) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        flatten(&item.tree, &mut Vec::new(), &mut paths);
        if matches!(item.vis, syn::Visibility::Public(_)) {
            self.reexported.extend(paths);
        } else if !matches!(item.vis, syn::Visibility::Inherited) {
            // `pub(crate) use`: another path inside the crate, not a dependency of the code.
        } else {
            self.used.extend(paths);
        }
    }

    // `pub(crate)`, `pub(super)`: a visibility, not an import.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments
            .first()
            .is_some_and(|s| s == "crate" || s == "super" || s == "self")
        {
            self.used.push(segments);
        }
        syn::visit::visit_path(self, path);
    }
}

/// The module a path leads into: the longest prefix that is a module.
fn resolve(path: &[String], here: &Module, mods: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let mut base: Module = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super" | "self") => here.clone(),
        _ => return None,
    };
    let mut rest = path;
    if rest[0] == "crate" {
        rest = &rest[1..];
    }
    while let Some(first) = rest.first() {
        match first.as_str() {
            "self" => {}
            "super" => {
                base.pop();
            }
            _ => break,
        }
        rest = &rest[1..];
    }
    let mut best = base.clone();
    for part in rest {
        base.push(part.clone());
        if !mods.contains_key(&base) {
            break;
        }
        best = base.clone();
    }
    Some(best)
}

struct Graph {
    edges: BTreeMap<Module, BTreeSet<Module>>,
    /// (module, what it re-exports with `pub use`, resolved).
    reexports: Vec<(Module, Module, String)>,
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&root);
    let mut graph = Graph {
        edges: BTreeMap::new(),
        reexports: Vec::new(),
    };
    for (module, file) in &mods {
        let Some(source) = std::fs::read_to_string(file)
            .ok()
            .filter(|_| file.extension().is_some_and(|e| e == "rs"))
        else {
            continue;
        };
        let parsed = syn::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut paths = Paths::default();
        paths.visit_file(&parsed);
        for path in &paths.used {
            let Some(target) = resolve(path, module, &mods) else {
                continue;
            };
            // A parent naming its own children is no dependency loop.
            if target != *module && !target.starts_with(module) {
                graph
                    .edges
                    .entry(module.clone())
                    .or_default()
                    .insert(target);
            }
        }
        for path in &paths.reexported {
            if let Some(target) = resolve(path, module, &mods) {
                graph
                    .reexports
                    .push((module.clone(), target, path.join("::")));
            }
        }
    }
    graph
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn top(m: &[String]) -> &str {
    m.first().map_or("", String::as_str)
}

#[test]
fn the_import_graph_of_src_has_no_cycle() {
    let graph = graph();
    fn visit(
        node: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = stack.iter().position(|n| n == node) {
            let cycle: Vec<String> = stack[at..].iter().chain([node]).map(|n| name(n)).collect();
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
    let (mut cycles, mut done) = (Vec::new(), BTreeSet::new());
    for node in graph.edges.keys() {
        visit(node, &graph.edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The floors: the model imports only the model; no hub module imports a transport or a
/// policy layer; transports import no policy layer, and policy layers no transport.
#[test]
fn each_floor_imports_only_the_floors_below_it() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (from, tos) in &graph.edges {
        for to in tos {
            let (f, t) = (top(from), top(to));
            let broken = (MODEL.contains(&f) && !MODEL.contains(&t))
                || (f == "hub" && (TRANSPORTS.contains(&t) || POLICY.contains(&t)))
                || (TRANSPORTS.contains(&f) && POLICY.contains(&t))
                || (POLICY.contains(&f) && TRANSPORTS.contains(&t));
            if broken {
                wrong.push(format!("{} -> {}", name(from), name(to)));
            }
        }
    }
    assert!(wrong.is_empty(), "floor plan broken:\n{}", wrong.join("\n"));
}

/// Code imports from the module that defines a thing, never from the crate root.
#[test]
fn modules_import_from_the_defining_module_not_the_crate_root() {
    let graph = graph();
    let wrong: Vec<String> = graph
        .edges
        .iter()
        .filter(|(from, tos)| {
            !from.is_empty() && top(from) != "test_helpers" && tos.iter().any(Vec::is_empty)
        })
        .map(|(from, _)| name(from))
        .collect();
    assert!(
        wrong.is_empty(),
        "crate-root imports in:\n{}",
        wrong.join("\n")
    );
}

/// One public path per item: only the crate root re-exports across modules; a module
/// re-exports its own children only.
#[test]
fn each_public_item_has_one_path() {
    let graph = graph();
    let wrong: Vec<String> = graph
        .reexports
        .iter()
        .filter(|(from, to, _)| !from.is_empty() && !to.starts_with(from))
        .map(|(from, _, path)| format!("{} re-exports {path}", name(from)))
        .collect();
    assert!(wrong.is_empty(), "second paths:\n{}", wrong.join("\n"));
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

/// The checker sees what it claims to, on a made-up source.
#[test]
fn the_checker_sees_use_trees_and_paths_but_not_tests_or_reexports() {
    let file = syn::parse_file(
        "use crate::{a, b::{c, d as e}};\n/// crate::in_doc\npub use crate::reexported::Name;\n\
         fn f() { let s = \"crate::in_string\"; super::sibling::g(); crate::x::y(); }\n\
         #[cfg(test)] mod tests { use crate::only_tests; }",
    )
    .unwrap();
    let mut paths = Paths::default();
    paths.visit_file(&file);
    let mut used: Vec<String> = paths.used.iter().map(|p| p.join("::")).collect();
    used.sort();
    used.dedup();
    assert_eq!(
        used,
        [
            "crate::a",
            "crate::b::c",
            "crate::b::d",
            "crate::x::y",
            "super::sibling::g"
        ]
    );
    assert_eq!(paths.reexported, [["crate", "reexported", "Name"]]);
}
