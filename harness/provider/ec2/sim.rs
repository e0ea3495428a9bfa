//! A simulated EC2 region on this machine, for trying the EC2 provider with no AWS account and
//! for its tests: moto's server answers the EC2 API on loopback, and every instance it reports
//! running is realised as a container of the node image at the instance's private address,
//! with its interface's MAC, running sshd (fresh host keys per instance) and the instance's
//! user data. A terminated instance's container is removed. The provider's real API calls, its
//! SSH path through the border, its user data and its replacement flow run unchanged.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use aws_sdk_ec2::types::InstanceAttributeName;
use base64::Engine as _;

use super::api::Ec2;
use crate::provider::containers::engine::{ContainerSpec, Engine};
use crate::provider::node_shell::DATA_ROOT;

/// The label on every container and network of the simulated region.
pub const SIM_LABEL: &str = "succession.ec2-sim";

/// The simulated region failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// moto's server could not be started or did not answer.
    #[error(
        "the EC2 emulator: {0} (install it with `pip install 'moto[server]'`; ci/setup-host does)"
    )]
    Emulator(String),
    /// The region's network or subnet could not be made.
    #[error("setting up the simulated region: {0}")]
    Setup(String),
}

/// What the region offers a topology's `[provider.ec2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The emulator's endpoint.
    pub endpoint_url: String,
    /// The region's name.
    pub region: String,
    /// The subnet's id.
    pub subnet_id: String,
    /// Its CIDR (a /24).
    pub subnet: Ipv4Addr,
    /// A security group.
    pub security_group: String,
}

impl Region {
    /// The `[provider.ec2]` lines a topology needs to run here.
    pub fn topology_lines(&self) -> String {
        format!(
            "subnet = \"{}/24\"\n\n[provider]\nkind = \"ec2\"\n\n[provider.ec2]\nregion = \"{}\"\nendpoint_url = \"{}\"\nsubnet_id = \"{}\"\nsecurity_group = \"{}\"\nami = \"ami-760aaa0f\"\nssh_user = \"root\"\n",
            self.subnet, self.region, self.endpoint_url, self.subnet_id, self.security_group
        )
    }
}

/// Starts moto's server on a loopback port; it is killed when the child is dropped.
pub async fn start_emulator(port: u16) -> Result<tokio::process::Child, SimError> {
    let child = tokio::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SimError::Emulator(format!("cannot start moto_server: {e}")))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if tokio::time::Instant::now() > deadline {
            return Err(SimError::Emulator(format!(
                "moto_server did not listen on 127.0.0.1:{port} within 30 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(child)
}

fn setup<E, R>(what: &str) -> impl FnOnce(aws_sdk_ec2::error::SdkError<E, R>) -> SimError + '_
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |e| {
        SimError::Setup(format!(
            "{what}: {}",
            aws_sdk_ec2::error::DisplayErrorContext(&e)
        ))
    }
}

/// Creates the region's VPC, subnet and security group in the emulator, and the Docker network
/// the instances' containers live on.
pub async fn create_region(
    ec2: &Ec2,
    engine: &Engine,
    endpoint_url: &str,
    subnet: Ipv4Addr,
) -> Result<Region, SimError> {
    let client = ec2.client();
    let vpc = client
        .create_vpc()
        .cidr_block(format!("{subnet}/16"))
        .send()
        .await
        .map_err(setup("CreateVpc"))?;
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
        .to_string();
    let created = client
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block(format!("{subnet}/24"))
        .send()
        .await
        .map_err(setup("CreateSubnet"))?;
    let subnet_id = created
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap_or_default()
        .to_string();
    let group = client
        .create_security_group()
        .vpc_id(&vpc_id)
        .group_name("succession-cell")
        .description("a succession cell")
        .send()
        .await
        .map_err(setup("CreateSecurityGroup"))?;
    let network = network_name(subnet);
    engine
        .create_network(
            &network,
            &format!("scs{}", subnet.octets()[2]),
            subnet,
            HashMap::from([(SIM_LABEL.to_string(), subnet.to_string())]),
        )
        .await
        .map_err(|e| SimError::Setup(e.to_string()))?;
    Ok(Region {
        endpoint_url: endpoint_url.to_string(),
        region: "us-east-1".to_string(),
        subnet_id,
        subnet,
        security_group: group.group_id().unwrap_or_default().to_string(),
    })
}

fn network_name(subnet: Ipv4Addr) -> String {
    format!("succ-ec2sim-{}", subnet.octets()[2])
}

fn container_of(instance: &str) -> String {
    format!("succ-ec2sim-{instance}")
}

/// Realises the emulator's instances as containers until `stop` resolves, then removes every
/// container it made and the network.
pub async fn realise(
    ec2: &Ec2,
    engine: &Engine,
    region: &Region,
    image: &str,
    say: &(dyn Fn(&str) + Sync),
    stop: impl std::future::Future<Output = ()>,
) {
    let mut realised: BTreeMap<String, String> = BTreeMap::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        let Ok(instances) = ec2.all_instances().await else {
            continue;
        };
        for i in &instances {
            let live = i.state == "pending" || i.state == "running";
            if live && !realised.contains_key(&i.id) {
                match realise_one(ec2, engine, region, image, i).await {
                    Ok(()) => {
                        say(&format!(
                            "instance {} ({}) realised at {}",
                            i.id,
                            i.node.as_deref().unwrap_or("?"),
                            i.address.map(|a| a.to_string()).unwrap_or_default()
                        ));
                        realised.insert(i.id.clone(), container_of(&i.id));
                    }
                    Err(e) => say(&format!("instance {}: {e}", i.id)),
                }
            } else if !live && realised.contains_key(&i.id) {
                let _ = engine.remove_container(&container_of(&i.id)).await;
                realised.remove(&i.id);
                say(&format!(
                    "instance {} {}: its container removed",
                    i.id, i.state
                ));
            }
        }
    }
    for name in realised.values() {
        let _ = engine.remove_container(name).await;
    }
    let _ = engine.remove_network(&network_name(region.subnet)).await;
}

async fn realise_one(
    ec2: &Ec2,
    engine: &Engine,
    region: &Region,
    image: &str,
    i: &super::api::Instance,
) -> Result<(), String> {
    let address = i.address.ok_or("no private address")?;
    let mac = i.mac.clone().ok_or("no MAC")?;
    let user_data = ec2
        .client()
        .describe_instance_attribute()
        .instance_id(&i.id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .map_err(|e| aws_sdk_ec2::error::DisplayErrorContext(&e).to_string())?
        .user_data()
        .and_then(|v| v.value())
        .map(|v| base64::engine::general_purpose::STANDARD.decode(v))
        .transpose()
        .map_err(|e| format!("user data is not base64: {e}"))?
        .unwrap_or_default();
    let name = container_of(&i.id);
    let spec = ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        hostname: i.node.clone().unwrap_or_else(|| i.id.clone()),
        network: network_name(region.subnet),
        address,
        mac: mac.clone(),
        labels: HashMap::from([
            (SIM_LABEL.to_string(), region.subnet.to_string()),
            ("succession.instance".to_string(), i.id.clone()),
        ]),
        extra_hosts: Vec::new(),
        read_only_binds: Vec::new(),
        tmpfs: vec![DATA_ROOT.to_string()],
        // A simulated instance is what an EC2 instance is: the faulty disk is not offered there.
        fuse: false,
    };
    engine
        .run_container(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let limit = Duration::from_secs(60);
    let name_ref = name.as_str();
    let run = |argv: Vec<String>| async move { engine.exec(name_ref, &argv, &[], limit).await };
    let mac_argv = crate::provider::node_shell::claim_address(&mac, address, true);
    run(mac_argv).await.map_err(|e| e.to_string())?;
    // What a booting instance does: fresh host keys, sshd, then cloud-init's user data.
    engine
        .upload_file(&name, "/tmp", "user-data", &user_data)
        .await
        .map_err(|e| e.to_string())?;
    let boot =
        "rm -f /etc/ssh/ssh_host_*; ssh-keygen -A >/dev/null; mkdir -p /run/sshd; /usr/sbin/sshd; \
                (sh /tmp/user-data >/var/log/user-data.log 2>&1 &)";
    let out = run(vec!["sh".into(), "-c".into(), boot.into()])
        .await
        .map_err(|e| e.to_string())?;
    if out.code != Some(0) {
        return Err(format!("boot failed: {}", out.stderr.trim()));
    }
    Ok(())
}
