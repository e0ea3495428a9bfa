//! Stamps the build with an id derived from the sources, so the harness can tell a stand-in
//! binary built from other sources (a stale one left beside it) before it starts anything.

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    // FNV-1a over every source's path and bytes: stable, and no dependency for a build script.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in &all {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        for b in rel.bytes().chain(fs::read(path).unwrap_or_default()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=SUCCESSION_BUILD_ID={hash:016x}");
    println!("cargo:rerun-if-changed=harness");
}
