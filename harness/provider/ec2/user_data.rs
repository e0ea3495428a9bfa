//! What an instance runs when it first boots (cloud-init runs a user-data shell script as
//! root): the run's key for the harness's user, the servers from Debian's packages where the
//! image lacks them, the directories the harness uses, and the dead-man switch — a shutdown
//! scheduled at the run's deadline, which with shutdown behaviour `terminate` ends the
//! instance even if the harness never comes back.

use std::time::Duration;

/// What the script is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// The user the harness logs in as.
    pub ssh_user: String,
    /// The run's public key (one `authorized_keys` line).
    pub public_key: String,
    /// The instance's full name (its hostname).
    pub hostname: String,
    /// Debian packages the node's services need.
    pub packages: Vec<String>,
    /// After how long the instance shuts itself down.
    pub lifetime: Duration,
}

/// Where the script marks that it is done (the harness waits for it over SSH).
pub const READY_MARK: &str = "/var/lib/succession-ready";

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl UserData {
    /// The script, as text (the API wants it base64-encoded once).
    pub fn render(&self) -> String {
        let minutes = self.lifetime.as_secs().div_ceil(60).max(1);
        let home = if self.ssh_user == "root" {
            "/root".to_string()
        } else {
            format!("/home/{}", self.ssh_user)
        };
        let packages: Vec<String> = self.packages.iter().map(|p| quote(p)).collect();
        format!(
            r#"#!/bin/sh
# succession: prepares this instance for a run; written by the harness.
set -eu
# The dead-man switch first, whatever fails below: with shutdown behaviour `terminate`, the
# instance is gone at the run's deadline even if the harness is not.
shutdown -h +{minutes} "succession run deadline" >/dev/null 2>&1 || (sleep {seconds} && poweroff) >/dev/null 2>&1 &
hostname {hostname} || true
echo {hostname} > /etc/hostname || true
id -u {user} >/dev/null 2>&1 || useradd -m -s /bin/sh {user}
mkdir -p {home}/.ssh
echo {key} >> {home}/.ssh/authorized_keys
chmod 700 {home}/.ssh
chmod 600 {home}/.ssh/authorized_keys
chown -R {user} {home}/.ssh
missing=""
for p in {packages}; do
  dpkg-query -W -f='${{Status}}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
fi
mkdir -p /var/lib/succession /opt/succession/bin
touch {ready}
"#,
            seconds = minutes * 60,
            hostname = quote(&self.hostname),
            user = quote(&self.ssh_user),
            home = quote(&home),
            key = quote(&self.public_key),
            packages = packages.join(" "),
            ready = READY_MARK,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> UserData {
        UserData {
            ssh_user: "admin".into(),
            public_key: "ssh-ed25519 AAAAC3 succession-run-a1b2c3".into(),
            hostname: "quorum-1.cell-1.dc-1.demo.lan".into(),
            packages: vec!["etcd-server".into(), "zookeeper".into()],
            lifetime: Duration::from_secs(90 * 60 + 1),
        }
    }

    #[test]
    fn the_dead_man_switch_comes_first_and_rounds_up() {
        let script = data().render();
        let shutdown = script
            .find("shutdown -h +91")
            .expect("a shutdown at the deadline");
        assert!(shutdown < script.find("useradd").expect("the user"));
    }

    #[test]
    fn the_key_and_packages_are_quoted_and_the_ready_mark_is_last() {
        let script = data().render();
        assert!(script.contains(
            "echo 'ssh-ed25519 AAAAC3 succession-run-a1b2c3' >> '/home/admin'/.ssh/authorized_keys"
        ));
        assert!(script.contains("for p in 'etcd-server' 'zookeeper'; do"));
        assert!(script.trim_end().ends_with(READY_MARK));
        let mut root = data();
        root.ssh_user = "root".into();
        assert!(root.render().contains("mkdir -p '/root'/.ssh"));
    }
}
