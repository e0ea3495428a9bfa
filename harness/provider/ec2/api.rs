//! The EC2 API as the provider uses it, through the official SDK (its credential chain, retries
//! and regions): launch one node's instance on its fixed private address, find a run's
//! instances by tag, terminate — only ever an instance that carries the run's tag, checked
//! before every mutating call — and wait for an address to be free again.

use std::net::Ipv4Addr;
use std::time::Duration;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ec2::types::{
    Filter, InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, ResourceType,
    ShutdownBehavior, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use base64::Engine as _;

/// The tag naming the run an instance belongs to.
pub const RUN_TAG: &str = "succession.run";
/// The tag naming the node an instance is.
pub const NODE_TAG: &str = "succession.node";

/// A call to EC2 failed, or was refused by the provider's own guard.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    /// The API answered with an error.
    #[error("EC2 {call} failed: {detail}")]
    Api {
        /// The call.
        call: &'static str,
        /// What it answered.
        detail: String,
    },
    /// The tag guard refused to touch an instance that is not the run's.
    #[error("refusing to {action} instance {instance}: it does not carry {RUN_TAG}={run}")]
    NotOurs {
        /// What was about to be done.
        action: &'static str,
        /// The instance.
        instance: String,
        /// The run.
        run: String,
    },
    /// Something did not happen in time.
    #[error("{what} within {} s", .limit.as_secs())]
    Timeout {
        /// What.
        what: String,
        /// The bound.
        limit: Duration,
    },
}

fn api<E, R>(call: &'static str) -> impl FnOnce(aws_sdk_ec2::error::SdkError<E, R>) -> Ec2Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |e| Ec2Error::Api {
        call,
        detail: DisplayErrorContext(&e).to_string(),
    }
}

/// One node's launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The run.
    pub run: String,
    /// The node's full name.
    pub node: String,
    /// The image.
    pub ami: String,
    /// The instance type.
    pub instance_type: String,
    /// The subnet.
    pub subnet_id: String,
    /// The security group.
    pub security_group: String,
    /// The node's private address.
    pub address: Ipv4Addr,
    /// An EC2 key pair, if any.
    pub key_name: Option<String>,
    /// Extra tags.
    pub tags: Vec<(String, String)>,
    /// The user-data script, as text.
    pub user_data: String,
}

/// An instance as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Its id.
    pub id: String,
    /// Its state (`running`, `terminated`…).
    pub state: String,
    /// Its private address.
    pub address: Option<Ipv4Addr>,
    /// Its primary interface's MAC.
    pub mac: Option<String>,
    /// Its run tag.
    pub run: Option<String>,
    /// Its node tag.
    pub node: Option<String>,
    /// Seconds since the epoch when it was launched.
    pub launched_secs: Option<i64>,
}

/// The EC2 client of a region (or an emulator's endpoint).
#[derive(Clone)]
pub struct Ec2 {
    client: Client,
}

impl Ec2 {
    /// A client for a region, with the SDK's whole credential chain (environment, profile, SSO,
    /// instance role…); `endpoint_url` points it at an emulator.
    pub async fn connect(region: &str, endpoint_url: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()));
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
            // An emulator takes any credentials; without any, requests would go unsigned.
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                && std::env::var_os("AWS_PROFILE").is_none()
            {
                loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                    "emulator",
                    "emulator",
                    None,
                    None,
                    "succession",
                ));
            }
        }
        let config = loader.load().await;
        Self {
            client: Client::new(&config),
        }
    }

    fn request(
        &self,
        l: &Launch,
    ) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
        let nic = InstanceNetworkInterfaceSpecification::builder()
            .device_index(0)
            .subnet_id(&l.subnet_id)
            .private_ip_address(l.address.to_string())
            // Only then is the address free again once the instance is gone.
            .delete_on_termination(true)
            .groups(&l.security_group)
            .build();
        let mut tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(Tag::builder().key("Name").value(&l.node).build())
            .tags(Tag::builder().key(RUN_TAG).value(&l.run).build())
            .tags(Tag::builder().key(NODE_TAG).value(&l.node).build());
        for (k, v) in &l.tags {
            tags = tags.tags(Tag::builder().key(k).value(v).build());
        }
        let mut request = self
            .client
            .run_instances()
            .image_id(&l.ami)
            .instance_type(InstanceType::from(l.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .network_interfaces(nic)
            .tag_specifications(tags.build())
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .user_data(base64::engine::general_purpose::STANDARD.encode(&l.user_data));
        if let Some(key) = &l.key_name {
            request = request.key_name(key);
        }
        request
    }

    /// The SDK's client, for calls the provider does not make (the simulated region's).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every instance the API lists, tagged or not.
    pub async fn all_instances(&self) -> Result<Vec<Instance>, Ec2Error> {
        let page = self
            .client
            .describe_instances()
            .send()
            .await
            .map_err(api("DescribeInstances"))?;
        Ok(page
            .reservations()
            .iter()
            .flat_map(|r| r.instances().iter().map(instance_of))
            .collect())
    }

    /// Asks EC2 whether the launch would be allowed, launching nothing (its DryRun).
    pub async fn dry_run(&self, l: &Launch) -> Result<(), Ec2Error> {
        match self.request(l).dry_run(true).send().await {
            Err(e) if e.code() == Some("DryRunOperation") => Ok(()),
            Err(e) => Err(api("RunInstances (dry run)")(e)),
            Ok(_) => Err(Ec2Error::Api {
                call: "RunInstances (dry run)",
                detail: "the API launched an instance on a dry run".into(),
            }),
        }
    }

    /// Launches a node's instance; retries while its address is still held by a terminated
    /// predecessor (`InvalidIPAddress.InUse` on AWS; some emulators answer a bare 500).
    pub async fn launch(&self, l: &Launch, limit: Duration) -> Result<Instance, Ec2Error> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.request(l).send().await {
                Ok(out) => {
                    let instance =
                        out.instances()
                            .first()
                            .map(instance_of)
                            .ok_or(Ec2Error::Api {
                                call: "RunInstances",
                                detail: "no instance in the answer".into(),
                            })?;
                    return Ok(instance);
                }
                Err(e) => {
                    let busy = e.code() == Some("InvalidIPAddress.InUse")
                        || e.raw_response().is_some_and(|r| r.status().as_u16() == 500);
                    if !busy || tokio::time::Instant::now() + backoff > deadline {
                        return Err(api("RunInstances")(e));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Every instance carrying a run's tag (any run's, with None), whatever its state.
    pub async fn instances(&self, run: Option<&str>) -> Result<Vec<Instance>, Ec2Error> {
        let filter = match run {
            Some(run) => Filter::builder()
                .name(format!("tag:{RUN_TAG}"))
                .values(run)
                .build(),
            None => Filter::builder().name("tag-key").values(RUN_TAG).build(),
        };
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(api("DescribeInstances"))?;
            for r in page.reservations() {
                out.extend(r.instances().iter().map(instance_of));
            }
        }
        Ok(out)
    }

    /// Terminates an instance after checking, on the API's own answer, that it carries the
    /// run's tag.
    pub async fn terminate(&self, run: &str, id: &str) -> Result<(), Ec2Error> {
        let ours = self
            .instances(Some(run))
            .await?
            .iter()
            .any(|i| i.id == id && i.run.as_deref() == Some(run));
        if !ours {
            return Err(Ec2Error::NotOurs {
                action: "terminate",
                instance: id.to_string(),
                run: run.to_string(),
            });
        }
        self.client
            .terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .map(|_| ())
            .map_err(api("TerminateInstances"))
    }

    /// Waits until an instance is terminated.
    pub async fn wait_terminated(
        &self,
        run: &str,
        id: &str,
        limit: Duration,
    ) -> Result<(), Ec2Error> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let state = self
                .instances(Some(run))
                .await?
                .into_iter()
                .find(|i| i.id == id)
                .map(|i| i.state);
            if state.as_deref().is_none_or(|s| s == "terminated") {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Ec2Error::Timeout {
                    what: format!("instance {id} not terminated"),
                    limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until no network interface holds an address.
    pub async fn wait_address_free(
        &self,
        address: Ipv4Addr,
        limit: Duration,
    ) -> Result<(), Ec2Error> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let held = self
                .client
                .describe_network_interfaces()
                .filters(
                    Filter::builder()
                        .name("addresses.private-ip-address")
                        .values(address.to_string())
                        .build(),
                )
                .send()
                .await
                .map_err(api("DescribeNetworkInterfaces"))?
                .network_interfaces()
                .len();
            if held == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Ec2Error::Timeout {
                    what: format!("{address} still held by a network interface"),
                    limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn instance_of(i: &aws_sdk_ec2::types::Instance) -> Instance {
    let tag = |key: &str| {
        i.tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    Instance {
        id: i.instance_id().unwrap_or_default().to_string(),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(InstanceStateName::as_str)
            .unwrap_or("unknown")
            .to_string(),
        address: i.private_ip_address().and_then(|a| a.parse().ok()),
        mac: i
            .network_interfaces()
            .first()
            .and_then(|n| n.mac_address())
            .map(str::to_string),
        run: tag(RUN_TAG),
        node: tag(NODE_TAG),
        launched_secs: i.launch_time().map(|t| t.secs()),
    }
}
