//! The faulty disks' FUSE mounts a local run made on this host: found in the host's mount
//! table by the run id in their source name (`succession-faultfs-RUN`), detached at teardown
//! and by gc. A mount whose daemon was killed answers nothing ("transport endpoint is not
//! connected") and would keep the run's directory from being removed.

/// The prefix of every faulty disk's source name in the mount table.
const FSNAME_PREFIX: &str = "succession-faultfs-";

/// Every faulty-disk mount on this host: (run id, mount point).
pub fn faulty_disk_mounts() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|table| parse_mounts(&table))
        .unwrap_or_default()
}

/// The faulty-disk mounts in a mount table's text, with their run ids.
pub fn parse_mounts(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = fields.next()?;
            let target = fields.next()?;
            let run = source.strip_prefix(FSNAME_PREFIX)?;
            // The mount table escapes spaces and other bytes as octal (`\040`).
            Some((run.to_string(), unescape(target)))
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(code) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(code);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches a mount at once, whatever holds it; false when it could not be.
pub fn detach(target: &str) -> bool {
    let Ok(path) = std::ffi::CString::new(target) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; MNT_DETACH only unlinks the mount from the tree.
    unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) == 0 }
}

/// Detaches a run's faulty-disk mounts under `dir` (a terminated node's: its disk goes with
/// it); returns the mount points detached.
pub fn detach_under(run_id: &str, dir: &std::path::Path) -> Vec<String> {
    faulty_disk_mounts()
        .into_iter()
        .filter(|(run, target)| run == run_id && std::path::Path::new(target).starts_with(dir))
        .filter_map(|(_, target)| detach(&target).then_some(target))
        .collect()
}

/// Detaches every faulty-disk mount of a run; returns the mount points detached.
pub fn detach_run(run_id: &str) -> Vec<String> {
    faulty_disk_mounts()
        .into_iter()
        .filter(|(run, _)| run == run_id)
        .filter_map(|(_, target)| detach(&target).then_some(target))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faulty_disk_mounts_are_found_by_their_source_name() {
        let table = "proc /proc proc rw 0 0\n\
succession-faultfs-1a2b3c /run/succession/runs/1a2b3c/nodes/quorum-1/zookeeper fuse rw,nosuid 0 0\n\
tmpfs /tmp tmpfs rw 0 0\n\
succession-faultfs-ffeedd /var/lib/with\\040space fuse rw 0 0\n";
        assert_eq!(
            parse_mounts(table),
            vec![
                (
                    "1a2b3c".to_string(),
                    "/run/succession/runs/1a2b3c/nodes/quorum-1/zookeeper".to_string()
                ),
                ("ffeedd".to_string(), "/var/lib/with space".to_string()),
            ]
        );
    }
}
