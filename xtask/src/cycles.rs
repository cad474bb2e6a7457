//! No module import cycles: within each crate of the workspace, the graph "module A names
//! something in module B" (`use crate::b::…`, `super::b::…`, or an inline `crate::b::X`
//! path) has no cycle. Part of `cargo xtask purity`, so `cargo xtask ci` runs it.
//!
//! A module is one file (`a.rs`, `a/mod.rs`, `a/b.rs`); `#[cfg(test)] mod tests` blocks,
//! `tests.rs` files and comments are not read, because test code may reach anywhere. A
//! module naming its own ancestor (`use super::X` from a child) is not an edge: a parent
//! declares its children, so those references are structure, not layering.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::{Result, say};

/// Checks every crate's `src/` under the workspace root.
pub fn run() -> Result {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut roots: Vec<PathBuf> = vec![workspace.join("tests/src"), workspace.join("xtask/src")];
    let crates =
        fs::read_dir(workspace.join("crates")).map_err(|e| format!("cannot list crates/: {e}"))?;
    for entry in crates.flatten() {
        let src = entry.path().join("src");
        if src.is_dir() {
            roots.push(src);
        }
    }
    roots.sort();
    let mut failures = Vec::new();
    let mut modules = 0;
    for root in &roots {
        let files = module_files(root)?;
        modules += files.len();
        for cycle in cycles(&files) {
            let shown = root.strip_prefix(&workspace).unwrap_or(root);
            failures.push(format!("{}: {}", shown.display(), cycle));
        }
    }
    if failures.is_empty() {
        say(&format!(
            "no module import cycles ({} crates, {modules} modules)",
            roots.len()
        ));
        Ok(())
    } else {
        Err(format!(
            "module import cycles (break each by moving the shared item into a module both \
             can use):\n  {}",
            failures.join("\n  ")
        ))
    }
}

/// Every module file under `src`, by module path (`""` for the crate root), with its
/// source. `src/bin/` holds other crates and is skipped; so are `tests` modules.
fn module_files(src: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path != src.join("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap_or(&path).with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            if parts.iter().any(|p| p == "tests") {
                continue;
            }
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.insert(parts.join("::"), text);
        }
    }
    Ok(out)
}

/// The cycles among `files`, each as `a -> b -> … -> a`.
pub fn cycles(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, text) in files {
        let here: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
        let edges = graph.entry(module.as_str()).or_default();
        for path in referenced_paths(&strip(text)) {
            let Some(target) = resolve(&here, &path, files) else {
                continue;
            };
            let is_ancestor = target.is_empty() || module.starts_with(&format!("{target}::"));
            if target != module && !is_ancestor {
                edges.insert(target);
            }
        }
    }
    strongly_connected(&graph)
        .into_iter()
        .map(|component| {
            let mut ring: Vec<&str> = component.clone();
            ring.extend(component.first());
            ring.join(" -> ")
        })
        .collect()
}

/// `text` without comments and without `#[cfg(test)]` module blocks.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let code = line.split("//").next().unwrap_or("");
        if code.trim() == "#[cfg(test)]" {
            // Skip the attributed item when it is an inline module.
            let Some(next) = lines.next() else { break };
            if next.trim_start().starts_with("mod ") && next.contains('{') {
                let mut depth = brace_delta(next);
                while depth > 0 {
                    let Some(inner) = lines.next() else { break };
                    depth += brace_delta(inner.split("//").next().unwrap_or(""));
                }
            }
            continue;
        }
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn brace_delta(line: &str) -> i64 {
    line.chars().fold(0, |d, c| match c {
        '{' => d + 1,
        '}' => d - 1,
        _ => d,
    })
}

/// Every path that starts at `crate`, `super` or `self`, with use-groups expanded
/// (`use crate::{a::X, b}` gives `crate::a::X` and `crate::b`).
fn referenced_paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !is_ident(chars.get(i - 1).copied().unwrap_or(' '));
        if boundary {
            for head in ["crate", "super", "self"] {
                if starts_with(&chars, i, head) && starts_with(&chars, i + head.len(), "::") {
                    let (mut paths, end) = parse_tree(&chars, i);
                    out.append(&mut paths);
                    i = end;
                    break;
                }
            }
        }
        i += 1;
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn starts_with(chars: &[char], at: usize, s: &str) -> bool {
    s.chars()
        .enumerate()
        .all(|(k, c)| chars.get(at + k) == Some(&c))
}

/// Parses a path (and its use-group, if any) starting at `at`; returns the expanded paths
/// and the index just past it.
fn parse_tree(chars: &[char], at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = at;
    loop {
        let start = i;
        while chars.get(i).copied().is_some_and(is_ident) {
            i += 1;
        }
        if i > start {
            prefix.push(
                chars
                    .get(start..i)
                    .unwrap_or_default()
                    .iter()
                    .collect::<String>(),
            );
        }
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if !starts_with(chars, i, "::") {
            return (vec![prefix], i);
        }
        i += 2;
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if chars.get(i) == Some(&'{') {
            let mut paths = Vec::new();
            i += 1;
            loop {
                while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    i += 1;
                }
                match chars.get(i) {
                    None => return (paths, i),
                    Some('}') => return (paths, i + 1),
                    Some(_) => {
                        let (subs, end) = parse_tree(chars, i);
                        for sub in subs {
                            let mut full = prefix.clone();
                            full.extend(sub);
                            paths.push(full);
                        }
                        // Skip an `as alias` or anything else up to the next separator.
                        i = end.max(i + 1);
                        while chars.get(i).is_some_and(|c| *c != ',' && *c != '}') {
                            i += 1;
                        }
                    }
                }
            }
        }
    }
}

/// The module `path` (seen from module `here`) names: the longest prefix that is a module.
fn resolve<'a>(
    here: &[&str],
    path: &[String],
    files: &'a BTreeMap<String, String>,
) -> Option<&'a str> {
    let mut base: Vec<String> = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = path.get(1..)?,
        Some("self") | Some("super") => {
            base = here.iter().map(|s| (*s).to_owned()).collect();
            while let Some(head) = rest.first() {
                match head.as_str() {
                    "self" => {}
                    "super" => {
                        base.pop();
                    }
                    _ => break,
                }
                rest = rest.get(1..)?;
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    (0..=base.len()).rev().find_map(|k| {
        let candidate = base.get(..k)?.join("::");
        files.get_key_value(&candidate).map(|(key, _)| key.as_str())
    })
}

/// Tarjan's strongly connected components with more than one member, each sorted.
fn strongly_connected<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<&'a str>>,
    }
    fn at(map: &BTreeMap<&str, usize>, key: &str) -> usize {
        map.get(key).copied().unwrap_or(usize::MAX)
    }
    fn visit<'a>(v: &'a str, graph: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, graph, s);
                let low = at(&s.low, v).min(at(&s.low, w));
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = at(&s.low, v).min(at(&s.index, w));
                s.low.insert(v, low);
            }
        }
        if at(&s.low, v) == at(&s.index, v) {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort_unstable();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for &v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(v, graph, &mut state);
        }
    }
    state.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_of(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(m, t)| ((*m).to_owned(), (*t).to_owned()))
            .collect()
    }

    #[test]
    fn a_use_cycle_is_found_and_named() {
        let files = crate_of(&[
            ("", "pub mod a;\npub mod b;\npub mod c;"),
            ("a", "use crate::b::B;"),
            ("b", "use crate::{c::C, x};"),
            ("c", "fn f() { let _ = super::a::A; }"),
        ]);
        assert_eq!(cycles(&files), vec!["a -> b -> c -> a".to_owned()]);
    }

    #[test]
    fn comments_tests_and_ancestors_are_not_edges() {
        let files = crate_of(&[
            ("", "pub mod a;\npub mod b;\nuse crate::a::A;"),
            (
                "a",
                "use super::*;\n// see crate::b::B\n#[cfg(test)]\nmod tests {\n    use crate::b::B;\n}",
            ),
            ("b", "use crate::a::A;"),
            (
                "b::inner",
                "use super::super::b::X;\nuse crate::a::{self, A as Z};",
            ),
        ]);
        assert!(cycles(&files).is_empty(), "{:?}", cycles(&files));
    }

    #[test]
    fn the_workspace_has_no_cycles() {
        // Runs from xtask/ under `cargo test`.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for src in [
            "crates/ownership-core/src",
            "crates/ownership-store/src",
            "crates/ownership-http/src",
            "crates/ownership-webhooks/src",
            "crates/ownership-cli/src",
            "tests/src",
            "xtask/src",
        ] {
            let files = module_files(&root.join(src)).expect("readable");
            assert!(cycles(&files).is_empty(), "{src}: {:?}", cycles(&files));
        }
    }
}
