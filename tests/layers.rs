//! The layering ARCHITECTURE.md describes, checked on the source: every top-level module of
//! the library sits in one layer and uses (outside its tests) only modules of lower layers, so
//! nothing imports upwards and no two modules depend on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first; keep in step with the diagram in ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    &["base", "source", "rng", "ensemble"],
    &["probe"],
    &["ledger", "standin"],
    &["spec"],
    &["availability", "invariants", "service"],
    &["provider"],
    &["supervisor", "backups"],
    &["cluster"],
    &["observe", "report"],
    &["runner", "exit"],
    &["steps", "preflight"],
    &["scenario"],
    &["session"],
    &["explore"],
];

/// Files that are not library modules, or only build under `cfg(test)`.
fn skipped(relative: &Path) -> bool {
    let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let top = relative
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or("");
    matches!(top, "main.rs" | "lib.rs" | "build.rs" | "bin" | "benches")
        || name == "tests.rs"
        || name == "mock.rs"
        || relative.components().any(|c| c.as_os_str() == "tests")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a piece of source names through `crate::`, including inside
/// `use crate::{a::X, b}` groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names in the group: those at nesting depth zero after `{` or `,`.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        let name = ident(&group[i..]);
                        if !name.is_empty() {
                            found.insert(name);
                        }
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn modules_use_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, mods)| mods.iter().map(move |m| (*m, i)))
        .collect();
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut problems = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("under harness/");
        if skipped(relative) {
            continue;
        }
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a file name")
            .trim_end_matches(".rs")
            .to_string();
        let Some(&layer) = layer_of.get(top.as_str()) else {
            problems.push(format!(
                "{}: module `{top}` is in no layer (add it to LAYERS and ARCHITECTURE.md)",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let code = match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => &text[..at],
            None => &text[..],
        };
        for used in named_modules(code) {
            if used == top {
                continue;
            }
            match layer_of.get(used.as_str()) {
                Some(&l) if l < layer => {}
                Some(&l) => problems.push(format!(
                    "{}: `{top}` (layer {layer}) uses `{used}` (layer {l})",
                    relative.display()
                )),
                None => problems.push(format!(
                    "{}: uses `crate::{used}`, which is in no layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn groups_are_read_by_their_top_level_names() {
    let names = named_modules("use crate::{a::{B, C}, d, e::F};\nlet x = crate::g::h();");
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a", "d", "e", "g"]);
}
