//! `[provider.ec2]` of a topology: where the EC2 provider launches a cell's instances and how
//! it reaches them. Parsed whatever the build, so a file is checked the same everywhere.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::reader::TableReader;
use crate::source::{InputError, SourceFile};

/// How the harness reaches the instances' services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// Through SSH tunnels over the connection to the border (the harness is outside the VPC).
    Tunnel,
    /// At their private addresses (the harness runs inside the VPC, or on its VPN).
    Direct,
}

/// The EC2 provider's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ec2Settings {
    /// The region.
    pub region: String,
    /// The subnet every instance is launched in; its CIDR is the topology's subnet.
    pub subnet_id: String,
    /// The security group of every instance.
    pub security_group: String,
    /// The image (a Debian bookworm AMI: the user data installs the servers from its packages).
    pub ami: String,
    /// The instance type of roles without one of their own.
    pub instance_type: String,
    /// Instance types by role.
    pub instance_types: BTreeMap<String, String>,
    /// An EC2 key pair to launch with as well as the run's own key, if any.
    pub key_name: Option<String>,
    /// The user the harness logs in as.
    pub ssh_user: String,
    /// Extra tags on every instance.
    pub tags: BTreeMap<String, String>,
    /// Another endpoint for the EC2 API (an emulator).
    pub endpoint_url: Option<String>,
    /// How services are reached.
    pub reach: Reach,
    /// The dead-man switch: every instance shuts itself down (and so terminates) this long
    /// after launch, whatever happened to the harness.
    pub lifetime: Duration,
}

/// Reads `[provider.ec2]`.
pub fn parse(
    source: &SourceFile,
    mut t: TableReader<'_, '_>,
    roles: &[String],
) -> Result<Ec2Settings, InputError> {
    let span = t.span();
    let required = |t: &mut TableReader<'_, '_>, key: &str| -> Result<String, InputError> {
        match t.opt_str(key)? {
            Some(v) if !v.value.trim().is_empty() => Ok(v.value),
            Some(v) => Err(source.error(v.span, format!("`{key}` must not be empty"))),
            None => Err(source.error(span.clone(), format!("`[provider.ec2]` needs `{key}`"))),
        }
    };
    let region = required(&mut t, "region")?;
    let subnet_id = required(&mut t, "subnet_id")?;
    let security_group = required(&mut t, "security_group")?;
    let ami = required(&mut t, "ami")?;
    let instance_type = t
        .opt_str("instance_type")?
        .map(|v| v.value)
        .unwrap_or_else(|| "t3.small".to_string());
    let ssh_user = t
        .opt_str("ssh_user")?
        .map(|v| v.value)
        .unwrap_or_else(|| "admin".to_string());
    let key_name = t.opt_str("key_name")?.map(|v| v.value);
    let endpoint_url = t.opt_str("endpoint_url")?.map(|v| v.value);
    let reach = parse_reach(source, &mut t)?;
    let lifetime = t
        .opt_duration("lifetime")?
        .map(|d| d.value)
        .unwrap_or(Duration::from_secs(2 * 3600));
    let instance_types = parse_instance_types(source, &mut t, roles)?;
    let tags = parse_tags(source, &mut t)?;
    t.finish(&[
        "region",
        "subnet_id",
        "security_group",
        "ami",
        "instance_type",
        "instance_types",
        "key_name",
        "ssh_user",
        "tags",
        "endpoint_url",
        "reach",
        "lifetime",
    ])?;
    Ok(Ec2Settings {
        region,
        subnet_id,
        security_group,
        ami,
        instance_type,
        instance_types,
        key_name,
        ssh_user,
        tags,
        endpoint_url,
        reach,
        lifetime,
    })
}

/// `reach`: through the border (`tunnel`, the default) or `direct`.
fn parse_reach(source: &SourceFile, t: &mut TableReader<'_, '_>) -> Result<Reach, InputError> {
    let Some(v) = t.opt_str("reach")? else {
        return Ok(Reach::Tunnel);
    };
    match v.value.as_str() {
        "tunnel" => Ok(Reach::Tunnel),
        "direct" => Ok(Reach::Direct),
        other => Err(source
            .error(v.span, format!("unknown reach `{other}`"))
            .with_help("`tunnel` (through the border, the default) or `direct`")),
    }
}

/// `instance_types = { ROLE = "TYPE", … }`: every role named is one of the topology's.
fn parse_instance_types(
    source: &SourceFile,
    t: &mut TableReader<'_, '_>,
    roles: &[String],
) -> Result<BTreeMap<String, String>, InputError> {
    let mut instance_types = BTreeMap::new();
    if let Some(mut types) = t.opt_table("instance_types")? {
        for (role, _) in types.entries() {
            if !roles.contains(&role.value) {
                return Err(source
                    .error(
                        role.span.clone(),
                        format!("no role `{}` in this topology", role.value),
                    )
                    .with_help(format!("roles: {}", roles.join(", "))));
            }
            let value = types
                .opt_str(&role.value)?
                .map(|v| v.value)
                .unwrap_or_default();
            instance_types.insert(role.value, value);
        }
    }
    Ok(instance_types)
}

/// `tags = { KEY = "VALUE", … }`: none of the harness's own (`succession.*`, `Name`).
fn parse_tags(
    source: &SourceFile,
    t: &mut TableReader<'_, '_>,
) -> Result<BTreeMap<String, String>, InputError> {
    let mut tags = BTreeMap::new();
    if let Some(mut table) = t.opt_table("tags")? {
        for (key, _) in table.entries() {
            if key.value.starts_with("succession.") || key.value == "Name" {
                return Err(source.error(
                    key.span.clone(),
                    format!("tag `{}` is the harness's own", key.value),
                ));
            }
            let value = table
                .opt_str(&key.value)?
                .map(|v| v.value)
                .unwrap_or_default();
            tags.insert(key.value, value);
        }
    }
    Ok(tags)
}

impl Ec2Settings {
    /// The instance type of a role.
    pub fn instance_type_of(&self, role: &str) -> &str {
        self.instance_types
            .get(role)
            .map(String::as_str)
            .unwrap_or(&self.instance_type)
    }
}

#[cfg(test)]
mod tests {
    use crate::source::SourceFile;
    use crate::spec::Topology;

    const HEAD: &str = "cell = \"c\"\ndc = \"d\"\nsubnet = \"10.20.30.0/24\"\n[roles.border]\ncount = 1\n[roles.quorum]\ncount = 3\nservices = [\"etcd\"]\n";

    fn parse(provider: &str) -> Result<Topology, String> {
        Topology::parse(&SourceFile::from_text(
            "t.toml",
            format!("{HEAD}{provider}"),
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_table_is_read_with_defaults() {
        let t = parse("[provider]\nkind = \"ec2\"\n[provider.ec2]\nregion = \"eu-west-1\"\nsubnet_id = \"subnet-1\"\nsecurity_group = \"sg-1\"\nami = \"ami-1\"\n[provider.ec2.instance_types]\nquorum = \"t3.medium\"\n[provider.ec2.tags]\nteam = \"ops\"\n")
            .expect("valid");
        let ec2 = t.settings.provider_ec2.expect("ec2 settings");
        assert_eq!(ec2.instance_type_of("quorum"), "t3.medium");
        assert_eq!(ec2.instance_type_of("border"), "t3.small");
        assert_eq!(ec2.ssh_user, "admin");
        assert_eq!(ec2.reach, super::Reach::Tunnel);
        assert_eq!(ec2.lifetime, std::time::Duration::from_secs(7200));
        assert_eq!(ec2.tags["team"], "ops");
    }

    #[test]
    fn mistakes_are_located_and_named() {
        let missing = parse("[provider.ec2]\nregion = \"eu-west-1\"\n").unwrap_err();
        assert!(
            missing.contains("t.toml:9:1") && missing.contains("needs `subnet_id`"),
            "{missing}"
        );
        let role = parse("[provider.ec2]\nregion = \"r\"\nsubnet_id = \"s\"\nsecurity_group = \"g\"\nami = \"a\"\n[provider.ec2.instance_types]\nmaster = \"t3.large\"\n").unwrap_err();
        assert!(role.contains("no role `master` in this topology"), "{role}");
        let tag = parse("[provider.ec2]\nregion = \"r\"\nsubnet_id = \"s\"\nsecurity_group = \"g\"\nami = \"a\"\n[provider.ec2.tags]\n\"succession.run\" = \"x\"\n").unwrap_err();
        assert!(
            tag.contains("tag `succession.run` is the harness's own"),
            "{tag}"
        );
        let kind = parse("[provider]\nkind = \"ec2\"\n").unwrap_err();
        assert!(
            kind.contains("`kind = \"ec2\"` needs a `[provider.ec2]` table"),
            "{kind}"
        );
    }
}
