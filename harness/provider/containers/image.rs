//! The node image: Debian bookworm with the real servers from Debian's packages, made on this
//! machine (no registry is needed) by `succession image build` — debootstrap, the packages
//! installed in a chroot, and the root file system imported into the engine. Its tag is a hash
//! of the recipe, so a machine builds it once and again only when the recipe changes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use futures::Stream;
use tokio::io::AsyncReadExt;

use super::engine::{Engine, EngineError};
use crate::provider::record::state_root;

/// The image's repository name.
pub const REPOSITORY: &str = "succession-node";

/// What the nodes run, from Debian's packages: the servers, and the tools the harness and the
/// seeds' procedures use on a node.
pub const PACKAGES: &[&str] = &[
    "etcd-server",
    "etcd-client",
    "zookeeper",
    "libslf4j-java",
    "haproxy",
    "iproute2",
    "procps",
    "iputils-arping",
    "iputils-ping",
    "netcat-openbsd",
    // Network faults (partitions, one-way and random loss) are packet filters on the node.
    "iptables",
    // The simulated EC2 region's instances are reached over SSH.
    "openssh-server",
];

const RECIPE: &str = include_str!("rootfs.sh");

/// Building the image failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A tool the build needs is missing, or it is not run as root.
    #[error("cannot build the node image: {0}")]
    Prerequisite(String),
    /// A step of the build failed.
    #[error("building the node image failed while {step}: {detail}")]
    Step {
        /// Which step.
        step: &'static str,
        /// Why.
        detail: String,
    },
    /// The engine refused the import.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The tag of the image this build of the harness makes: a hash of its recipe.
pub fn recipe_tag() -> String {
    // FNV-1a: stable across Rust releases, unlike the standard hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in RECIPE.bytes().chain(PACKAGES.join(" ").bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", hash >> 16)
}

/// The image runs use unless told otherwise.
pub fn default_image() -> String {
    format!("{REPOSITORY}:{}", recipe_tag())
}

/// Makes the default image unless it is present (or `force`); returns its reference.
pub async fn build(engine: &Engine, force: bool, say: &dyn Fn(&str)) -> Result<String, ImageError> {
    let reference = default_image();
    if !force && engine.has_image(&reference).await? {
        say(&format!("image {reference} is present; nothing to build"));
        return Ok(reference);
    }
    check_prerequisites()?;
    let work = state_root().join("image-build").join(recipe_tag());
    let rootfs = work.join("rootfs");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| step("creating its work directory", e))?;
    let script = work.join("rootfs.sh");
    std::fs::write(&script, RECIPE).map_err(|e| step("writing the recipe", e))?;
    let t0 = Instant::now();
    say(&format!(
        "building image {reference} (debootstrap, packages, import: a few minutes, once)"
    ));
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(&rootfs)
        .args(PACKAGES)
        .stdin(Stdio::null())
        .status()
        .await
        .map_err(|e| step("running the recipe", e))?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&work);
        return Err(ImageError::Step {
            step: "making the root file system",
            detail: format!("the recipe exited with {status} (its log is above)"),
        });
    }
    let built = t0.elapsed();
    say(&format!(
        "root file system made in {:.0} s; importing it",
        built.as_secs_f64()
    ));
    let (tar, stream) = tar_stream(&rootfs)?;
    let progress = crate::base::progress::Progress::spinner("importing the root file system");
    let imported = engine.import_image(REPOSITORY, &recipe_tag(), stream).await;
    drop(progress);
    let finished = tar.wait_with_output().await;
    let _ = std::fs::remove_dir_all(&work);
    imported?;
    match finished {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(ImageError::Step {
                step: "archiving the root file system",
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
        Err(e) => return Err(step("archiving the root file system", e)),
    }
    say(&format!(
        "image {reference} built in {:.0} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(reference)
}

fn step(step: &'static str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Step {
        step,
        detail: e.to_string(),
    }
}

fn check_prerequisites() -> Result<(), ImageError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ImageError::Prerequisite(
            "debootstrap and chroot need root; run as root or with sudo".into(),
        ));
    }
    let found = |tool: &str| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists())
    };
    for tool in ["debootstrap", "chroot", "tar"] {
        if !found(tool) {
            return Err(ImageError::Prerequisite(format!(
                "`{tool}` not found; ci/setup-host installs it (apt-get install {tool})"
            )));
        }
    }
    Ok(())
}

type TarChild = tokio::process::Child;

/// `tar` of a root file system, streamed to the engine as it is written.
fn tar_stream(
    rootfs: &PathBuf,
) -> Result<
    (
        TarChild,
        impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    ),
    ImageError,
> {
    let mut child = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--numeric-owner", "-cf", "-", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| step("archiving the root file system", e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| step("archiving the root file system", "no output pipe"))?;
    let stream = futures::stream::unfold(stdout, |mut out| async move {
        let mut buf = vec![0u8; 1 << 20];
        match out.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), out))
            }
            Err(e) => Some((Err(e), out)),
        }
    });
    Ok((child, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_follows_the_recipe() {
        let tag = recipe_tag();
        assert_eq!(tag.len(), 12);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(default_image(), format!("succession-node:{tag}"));
    }
}
