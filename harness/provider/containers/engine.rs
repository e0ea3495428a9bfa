//! The Docker engine as the containers provider drives it, through bollard: one client that
//! negotiates the API version with whatever daemon answers (this project is used against
//! 20.10 daemons speaking API 1.41 as well as current ones), and the few calls the provider
//! makes. Nothing here knows about runs or topologies.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use tracing::Instrument;

use crate::provider::ExecOutput;

/// The label every container, network and volume of a run carries, with the run's id.
pub const RUN_LABEL: &str = "succession.run";
/// The label naming a container's node.
pub const NODE_LABEL: &str = "succession.node";

/// A call to the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No daemon answers.
    #[error("cannot reach the Docker engine ({detail}); is the daemon running and is DOCKER_HOST right?")]
    Unreachable {
        /// Why.
        detail: String,
    },
    /// The daemon refused or failed a request.
    #[error("Docker failed to {action}: {detail}")]
    Api {
        /// What was asked.
        action: String,
        /// The daemon's answer.
        detail: String,
    },
    /// A command in a container did not finish in time.
    #[error("`{command}` did not finish within {} s", .limit.as_secs())]
    Timeout {
        /// The command.
        command: String,
        /// Its bound.
        limit: Duration,
    },
}

impl EngineError {
    fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |e| EngineError::Api {
            action,
            detail: short_error(&e),
        }
    }

    /// Whether the daemon answered "no such object" (removing something already gone).
    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::Api { detail, .. } if detail.starts_with("404"))
    }
}

/// The daemon's message without bollard's wrapping.
fn short_error(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => format!("{status_code} {message}"),
        other => other.to_string(),
    }
}

/// What a node's container is made of.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Hostname inside (the node's full name).
    pub hostname: String,
    /// The run's network.
    pub network: String,
    /// Fixed IPv4 address on that network.
    pub address: Ipv4Addr,
    /// MAC address (honoured by daemons from API 1.44; older ones get it set inside).
    pub mac: String,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// `/etc/hosts` lines as `name:address`.
    pub extra_hosts: Vec<String>,
    /// Read-only bind mounts, `host:container`.
    pub read_only_binds: Vec<(String, String)>,
    /// tmpfs mounts inside.
    pub tmpfs: Vec<String>,
    /// Whether it may mount FUSE filesystems (the faulty disk): `/dev/fuse`, `CAP_SYS_ADMIN`
    /// and no AppArmor profile (Docker's default one refuses every mount).
    pub fuse: bool,
}

/// A connected, version-negotiated client.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects to the local daemon (`DOCKER_HOST` or the default socket) and settles on the
    /// highest API version both sides speak.
    pub async fn connect() -> Result<Self, EngineError> {
        let docker =
            Docker::connect_with_local_defaults().map_err(|e| EngineError::Unreachable {
                detail: short_error(&e),
            })?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| EngineError::Unreachable {
                detail: short_error(&e),
            })?;
        Ok(Self { docker })
    }

    /// The API version in use, `1.41`.
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// Whether an image is present.
    pub async fn has_image(&self, reference: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = EngineError::api(format!("inspect image {reference}"))(e);
                if e.is_not_found() {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// `docker import`: makes an image from a root file system tar streamed in.
    pub async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        tar: impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), EngineError> {
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .build();
        let mut progress =
            self.docker
                .create_image(Some(options), Some(bollard::body_try_stream(tar)), None);
        while let Some(item) = progress.next().await {
            item.map_err(EngineError::api(format!("import image {repo}:{tag}")))?;
        }
        Ok(())
    }

    /// Creates a bridge network on `subnet`/24 with the gateway at .1.
    #[tracing::instrument(name = "engine.create_network", skip_all, fields(network = name))]
    pub async fn create_network(
        &self,
        name: &str,
        bridge: &str,
        subnet: Ipv4Addr,
        labels: HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let [a, b, c, _] = subnet.octets();
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(format!("{subnet}/24")),
                    gateway: Some(Ipv4Addr::new(a, b, c, 1).to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            // A bridge name of ours, so the host side of the run's network can be named.
            options: Some(HashMap::from([(
                "com.docker.network.bridge.name".to_string(),
                bridge.to_string(),
            )])),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map(|_| ())
            .map_err(EngineError::api(format!(
                "create network {name} on {subnet}/24"
            )))
    }

    /// Removes a network; one already gone is not an error.
    #[tracing::instrument(name = "engine.remove_network", skip_all, fields(network = name))]
    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = EngineError::api(format!("remove network {name}"))(e);
                if e.is_not_found() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Creates and starts a node's container.
    pub async fn run_container(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(spec.address.to_string()),
                ..Default::default()
            }),
            mac_address: Some(spec.mac.clone()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: Some(spec.hostname.clone()),
            // The container only hosts what the harness starts in it; init reaps them.
            cmd: Some(vec!["sleep".to_string(), "infinity".to_string()]),
            labels: Some(spec.labels.clone()),
            host_config: Some(HostConfig {
                init: Some(true),
                network_mode: Some(spec.network.clone()),
                // `ip neigh del` and setting the MAC need it; mounting the faulty disk needs
                // SYS_ADMIN, given only to the nodes of a topology that asks for one.
                cap_add: Some(if spec.fuse {
                    vec!["NET_ADMIN".to_string(), "SYS_ADMIN".to_string()]
                } else {
                    vec!["NET_ADMIN".to_string()]
                }),
                devices: spec.fuse.then(|| {
                    vec![bollard::models::DeviceMapping {
                        path_on_host: Some("/dev/fuse".to_string()),
                        path_in_container: Some("/dev/fuse".to_string()),
                        cgroup_permissions: Some("rwm".to_string()),
                    }]
                }),
                security_opt: spec.fuse.then(|| vec!["apparmor:unconfined".to_string()]),
                extra_hosts: Some(spec.extra_hosts.clone()),
                binds: Some(
                    spec.read_only_binds
                        .iter()
                        .map(|(host, inside)| format!("{host}:{inside}:ro"))
                        .collect(),
                ),
                tmpfs: Some(
                    spec.tmpfs
                        .iter()
                        .map(|path| (path.clone(), "rw,exec,mode=755".to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        self.docker
            .create_container(Some(options), body)
            .instrument(tracing::info_span!("engine.create_container", container = %spec.name))
            .await
            .map_err(EngineError::api(format!("create container {}", spec.name)))?;
        self.docker
            .start_container(&spec.name, None)
            .instrument(tracing::info_span!("engine.start_container", container = %spec.name))
            .await
            .map_err(EngineError::api(format!("start container {}", spec.name)))
    }

    /// Kills (SIGKILL) and removes a container with its anonymous volumes; one already gone is
    /// not an error.
    #[tracing::instrument(name = "engine.remove_container", skip_all, fields(container = name))]
    pub async fn remove_container(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = EngineError::api(format!("remove container {name}"))(e);
                if e.is_not_found() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Creates an exec of `argv` in a container and starts it attached (standard input too
    /// when `stdin`); its id, to inspect it, and its streams.
    async fn start_exec(
        &self,
        container: &str,
        argv: &[String],
        env: &[String],
        stdin: bool,
    ) -> Result<(String, StartExecResults), bollard::errors::Error> {
        let created = self
            .docker
            .create_exec(
                container,
                bollard::models::ExecConfig {
                    attach_stdin: stdin.then_some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(argv.to_vec()),
                    env: (!env.is_empty()).then(|| env.to_vec()),
                    ..Default::default()
                },
            )
            .instrument(tracing::info_span!("engine.create_exec", container))
            .await?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .instrument(tracing::info_span!("engine.start_exec", container))
            .await?;
        Ok((created.id, started))
    }

    /// Runs a command in a container and collects what it printed, bounded by `limit`.
    #[tracing::instrument(name = "engine.exec", skip_all, fields(container = container, program = argv.first().map(String::as_str).unwrap_or("")))]
    pub async fn exec(
        &self,
        container: &str,
        argv: &[String],
        env: &[String],
        limit: Duration,
    ) -> Result<ExecOutput, EngineError> {
        let command = argv.join(" ");
        let run = async {
            let action = || format!("run `{command}` in {container}");
            let (id, started) = self
                .start_exec(container, argv, env, false)
                .await
                .map_err(EngineError::api(action()))?;
            let attached = tracing::info_span!("engine.read_exec");
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(chunk) = output.next().instrument(attached.clone()).await {
                    match chunk.map_err(EngineError::api(action()))? {
                        bollard::container::LogOutput::StdErr { message } => {
                            stderr.extend_from_slice(&message)
                        }
                        other => stdout.extend_from_slice(&other.into_bytes()),
                    }
                }
            }
            // The read span ends with the command's output.
            drop(attached);
            let inspected = self
                .docker
                .inspect_exec(&id)
                .instrument(tracing::info_span!("engine.inspect_exec"))
                .await
                .map_err(EngineError::api(action()))?;
            Ok(ExecOutput {
                code: inspected.exit_code.map(|c| c as i32),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        };
        tokio::time::timeout(limit, run)
            .await
            .map_err(|_| EngineError::Timeout {
                command: command.clone(),
                limit,
            })?
    }

    /// Starts a long-lived command in a container with its standard input and output
    /// attached: the node agent's transport. What it prints on standard error is logged.
    pub async fn attach(
        &self,
        container: &str,
        argv: &[String],
    ) -> Result<crate::provider::agent::Transport, EngineError> {
        let action = || format!("attach `{}` in {container}", argv.join(" "));
        let (_, started) = self
            .start_exec(container, argv, &[], true)
            .await
            .map_err(EngineError::api(action()))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(EngineError::Api {
                action: action(),
                detail: "the engine started it detached".into(),
            });
        };
        let name = container.to_string();
        let output = output.filter_map(move |chunk| {
            let item = match chunk {
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    tracing::warn!(container = %name, "node agent: {}", String::from_utf8_lossy(&message).trim_end());
                    None
                }
                Ok(other) => Some(Ok(other.into_bytes())),
                Err(e) => Some(Err(std::io::Error::other(short_error(&e)))),
            };
            std::future::ready(item)
        });
        Ok(crate::provider::agent::Transport {
            input,
            output: Box::pin(output),
        })
    }

    /// Writes one file into an existing directory of a container (as a one-entry tar, which is
    /// what the engine's copy API takes).
    #[tracing::instrument(name = "engine.upload_file", skip_all, fields(container = container))]
    pub async fn upload_file(
        &self,
        container: &str,
        dir: &str,
        name: &str,
        contents: &[u8],
    ) -> Result<(), EngineError> {
        let action = || format!("copy {name} into {container}:{dir}");
        let archive = one_file_tar(name, contents).map_err(|e| EngineError::Api {
            action: action(),
            detail: e.to_string(),
        })?;
        let options = UploadToContainerOptionsBuilder::new().path(dir).build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(EngineError::api(action()))
    }

    /// Names of the containers (running or not) carrying `label=value`, or the label at all.
    pub async fn labelled_containers(
        &self,
        label: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, HashMap<String, String>)>, EngineError> {
        let filter = label_filter(label, value);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filter)
            .build();
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(EngineError::api("list containers"))?;
        Ok(found
            .into_iter()
            .map(|c| {
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                (name, c.labels.unwrap_or_default())
            })
            .collect())
    }

    /// Names and labels of the networks carrying the label.
    pub async fn labelled_networks(
        &self,
        label: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, HashMap<String, String>)>, EngineError> {
        let filter = label_filter(label, value);
        let options = ListNetworksOptionsBuilder::new().filters(&filter).build();
        let found = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(EngineError::api("list networks"))?;
        Ok(found
            .into_iter()
            .map(|n| (n.name.unwrap_or_default(), n.labels.unwrap_or_default()))
            .collect())
    }

    /// Names and labels of the volumes carrying the label.
    pub async fn labelled_volumes(
        &self,
        label: &str,
        value: Option<&str>,
    ) -> Result<Vec<(String, HashMap<String, String>)>, EngineError> {
        let filter = label_filter(label, value);
        let options = ListVolumesOptionsBuilder::new().filters(&filter).build();
        let found = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(EngineError::api("list volumes"))?;
        Ok(found
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.labels))
            .collect())
    }

    /// Removes a volume; one already gone is not an error.
    pub async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = EngineError::api(format!("remove volume {name}"))(e);
                if e.is_not_found() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }
}

fn label_filter(label: &str, value: Option<&str>) -> HashMap<String, Vec<String>> {
    let wanted = match value {
        Some(v) => format!("{label}={v}"),
        None => label.to_string(),
    };
    HashMap::from([("label".to_string(), vec![wanted])])
}

/// A tar archive holding one regular file.
fn one_file_tar(name: &str, contents: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_size(contents.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, name, contents)?;
    builder.into_inner()
}

/// Runs a call to the engine to completion from synchronous code, whether or not a runtime is
/// running on this thread (provisioning and teardown are synchronous and run inside the
/// harness's runtime; `gc` runs outside any). The engine's client keeps no connection between
/// calls, so a short-lived runtime serves it.
pub fn block_on<F>(future: F) -> Result<F::Output, EngineError>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    crate::provider::blocking::run(future).map_err(|e| EngineError::Unreachable {
        detail: format!("cannot start a runtime for the Docker client: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_archives_hold_exactly_the_file() {
        let archive = one_file_tar("conf", b"a=1\n").expect("tar");
        let mut reader = tar::Archive::new(archive.as_slice());
        let entries: Vec<(String, Vec<u8>)> = reader
            .entries()
            .expect("entries")
            .map(|e| {
                let mut e = e.expect("entry");
                let path = e.path().expect("path").display().to_string();
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut body).expect("read");
                (path, body)
            })
            .collect();
        assert_eq!(entries, vec![("conf".to_string(), b"a=1\n".to_vec())]);
    }

    #[test]
    fn label_filters_match_a_value_or_the_label_alone() {
        assert_eq!(
            label_filter(RUN_LABEL, Some("a1b2c3"))["label"],
            vec!["succession.run=a1b2c3"]
        );
        assert_eq!(
            label_filter(RUN_LABEL, None)["label"],
            vec!["succession.run"]
        );
    }
}
