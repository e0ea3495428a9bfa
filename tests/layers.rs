//! The layering ARCHITECTURE.md describes, checked on the source: every top-level module of
//! the library sits in one layer and uses (outside its tests) only modules of lower layers, so
//! nothing imports upwards and no two modules depend on each other; and inside each folder, the
//! modules one level down form no cycle either. The layer table is read from ARCHITECTURE.md
//! itself, so the page and the check cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers of ARCHITECTURE.md's diagram, lowest first: each numbered line of the code block
/// under "## Layers" begins a layer, and its first column names modules (`explore/`,
/// `session.rs`, …); a line whose first column goes on without a number adds to the layer above.
fn layers_from_architecture(page: &str) -> Vec<Vec<String>> {
    let section = page
        .split("## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the Layers section has a code block");
    let mut numbered: Vec<(usize, Vec<String>)> = Vec::new();
    for line in block.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            continue;
        }
        let (number, rest) = match trimmed.split_once(char::is_whitespace) {
            Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => {
                (Some(n.parse::<usize>().expect("a layer number")), rest)
            }
            // A first-column continuation sits under the module column; a description's
            // continuation is indented much further.
            _ if indent < 10 => (None, trimmed),
            _ => continue,
        };
        let modules_column = rest.trim_start().split("  ").next().unwrap_or("");
        let modules: Vec<String> = modules_column
            .split([',', ' '])
            .filter_map(|w| {
                let w = w.trim();
                let name = w.strip_suffix('/').or_else(|| w.strip_suffix(".rs"))?;
                (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                    .then(|| name.to_string())
            })
            .collect();
        match number {
            Some(n) => numbered.push((n, modules)),
            None => numbered
                .last_mut()
                .expect("a continuation follows a numbered line")
                .1
                .extend(modules),
        }
    }
    numbered.sort_by_key(|(n, _)| *n);
    for (i, (n, _)) in numbered.iter().enumerate() {
        assert_eq!(
            *n, i,
            "ARCHITECTURE.md's layers are numbered 0, 1, 2, … without gaps"
        );
    }
    numbered.into_iter().map(|(_, m)| m).collect()
}

fn layers() -> Vec<Vec<String>> {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    layers_from_architecture(&page)
}

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

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segments named right after a prefix: `x` in `x::Y`, or `a` and `d` in
/// `{a::{B, C}, d}` (the names at nesting depth zero after `{` or `,`).
fn names_after(rest: &str, found: &mut BTreeSet<String>) {
    let Some(group) = rest.strip_prefix('{') else {
        let name = ident(rest);
        if !name.is_empty() {
            found.insert(name);
        }
        return;
    };
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
}

/// The top-level modules a piece of source names through `crate::`, including inside
/// `use crate::{a::X, b}` groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        names_after(&code[at + "crate::".len()..], &mut found);
    }
    found
}

#[test]
fn modules_use_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let layers = layers();
    let layer_of: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, mods)| mods.iter().map(move |m| (m.as_str(), i)))
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
                "{}: module `{top}` is in no layer (add it to ARCHITECTURE.md's diagram)",
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

#[test]
fn the_table_is_read_from_the_diagram() {
    let page = "## Layers\n\ntext\n\n```\n 2  session.rs (bin/)   one command\n                     goes on\n 1  steps/, preflight/  the steps\n 0  base/, source.rs,   durations\n    ensemble/           plans\n```\n";
    assert_eq!(
        layers_from_architecture(page),
        vec![
            vec!["base".to_string(), "source".into(), "ensemble".into()],
            vec!["steps".into(), "preflight".into()],
            vec!["session".into()],
        ]
    );
    // Today's page: every layer names at least one module.
    assert!(layers().iter().all(|l| !l.is_empty()));
}

/// The submodule (one level below the top) a file belongs to: `provider/ec2/gc.rs` is
/// `provider::ec2`, `provider/choice.rs` is `provider::choice`; files directly in a folder's
/// `mod.rs` are the folder itself.
fn submodule_of(relative: &Path) -> Option<(String, String)> {
    let parts: Vec<&str> = relative
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    match parts.as_slice() {
        [top, file] if *file != "mod.rs" => {
            Some((top.to_string(), file.trim_end_matches(".rs").to_string()))
        }
        [top, sub, ..] if parts.len() > 2 => Some((top.to_string(), sub.to_string())),
        _ => None,
    }
}

/// The sibling submodules a file of `top` names: `crate::top::x`, `super::x` from a file
/// directly in the folder, `super::super::x` from one a level deeper.
fn sibling_uses(code: &str, top: &str, depth: usize) -> BTreeSet<String> {
    let prefixes = [format!("crate::{top}::"), "super::".repeat(depth)];
    let mut found = BTreeSet::new();
    for prefix in &prefixes {
        for (at, _) in code.match_indices(prefix.as_str()) {
            // `super::super::x` also contains `super::x`: only whole prefixes count.
            if at >= "super::".len() && code[..at].ends_with("super::") {
                continue;
            }
            names_after(&code[at + prefix.len()..], &mut found);
        }
    }
    found
}

#[test]
fn modules_inside_folders_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let mut files = Vec::new();
    sources(&root, &mut files);
    // (top, sub) -> siblings it uses
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("under harness/");
        if skipped(relative) {
            continue;
        }
        let Some((top, sub)) = submodule_of(relative) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let code = match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => &text[..at],
            None => &text[..],
        };
        let depth = relative.components().count() - 1;
        let used = sibling_uses(code, &top, depth);
        edges
            .entry((top.clone(), sub.clone()))
            .or_default()
            .extend(used.into_iter().filter(|u| *u != sub));
    }
    // A cycle of any length: a depth-first walk from each submodule that comes back to it.
    let mut cycles = BTreeSet::new();
    for (top, start) in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(&(top.clone(), at.clone())).into_iter().flatten() {
                if next == start {
                    // One report per cycle, whichever member it was found from.
                    let mut ring = path.clone();
                    let first = ring.iter().min().cloned().unwrap_or_default();
                    let pos = ring.iter().position(|m| *m == first).unwrap_or(0);
                    ring.rotate_left(pos);
                    cycles.insert(format!("{top}: {} -> {}", ring.join(" -> "), ring[0]));
                } else if !path.contains(next) && edges.contains_key(&(top.clone(), next.clone())) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    let cycles: Vec<String> = cycles.into_iter().collect();
    assert!(
        cycles.is_empty(),
        "modules inside a folder use each other: {}",
        cycles.join(", ")
    );
}
