//! `succession-standin`: the stand-in servers (mesos-master, marathon) and the demo app that
//! the local provider runs inside node namespaces, and the fault tools every provider runs on
//! its nodes (the packet delay queue, the faulty disk, the timers that verify them).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use succession::node_tools::faultfs::{self, FaultfsOptions};
use succession::standin::{app, marathon, mesos, Options};

#[derive(Parser)]
#[command(
    name = "succession-standin",
    about = "Stand-in servers for succession's local provider"
)]
struct Cli {
    #[command(subcommand)]
    server: Server,
}

#[derive(Subcommand)]
enum Server {
    /// Stand-in for mesos-master (HTTP on 5050, election under /mesos).
    MesosMaster(Common),
    /// Stand-in for Marathon (HTTP on 8080, leader latch under /marathon/leader-curator).
    Marathon(Common),
    /// The demo application (HTTP on 8000).
    App(Common),
    /// Print the id of the sources this binary was built from (the harness checks it).
    BuildId,
    /// The faulty disk: a FUSE passthrough whose unsynced writes a SIGKILL loses.
    Faultfs(FaultfsArgs),
    /// Hold the packets an iptables NFQUEUE rule sends here for a delay, then let them go.
    DelayQueue(DelayArgs),
    /// Time TCP handshakes to an address (a closed port's refusal counts): JSON on stdout.
    ConnectTime(ConnectArgs),
    /// Time fsyncs of 4 KiB writes in a directory: JSON on stdout.
    FsyncTime(FsyncArgs),
    /// The node agent: run the harness's commands, read as JSON lines on stdin, replies on
    /// stdout, until stdin closes.
    Agent,
}

#[derive(clap::Args)]
struct DelayArgs {
    /// The NFQUEUE number to read.
    #[arg(long)]
    queue: u16,
    /// How long every packet is held, ms.
    #[arg(long)]
    delay_ms: u64,
    /// Up to this much more per packet, ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// The most packets held at once; more are dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    max_packets: u32,
    /// Where the counters are written (JSON).
    #[arg(long)]
    stats: PathBuf,
    /// The mark bit the queue's rule skips (set on released packets).
    #[arg(long)]
    mark_bit: u32,
}

#[derive(clap::Args)]
struct ConnectArgs {
    /// `address:port`.
    #[arg(long)]
    to: std::net::SocketAddr,
    /// How many handshakes.
    #[arg(long, default_value_t = 5)]
    count: u32,
    /// When an attempt counts as timed out, ms.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
}

#[derive(clap::Args)]
struct FsyncArgs {
    /// The directory the timed file is written in (and removed from).
    #[arg(long)]
    dir: PathBuf,
    /// How many fsyncs.
    #[arg(long, default_value_t = 3)]
    count: u32,
}

#[derive(clap::Args)]
struct FaultfsArgs {
    /// What survives a power loss (created empty if missing).
    #[arg(long)]
    durable: PathBuf,
    /// What the mount serves: replaced by a copy of --durable at start.
    #[arg(long)]
    live: PathBuf,
    /// Where to mount.
    #[arg(long)]
    mount: PathBuf,
    /// JSON latencies, re-read on SIGHUP (missing: none).
    #[arg(long)]
    control: PathBuf,
    /// Where counters are written on SIGHUP and at a clean stop.
    #[arg(long)]
    stats: PathBuf,
    /// The mount's source name in /proc/mounts.
    #[arg(long)]
    fsname: String,
}

#[derive(clap::Args)]
struct Common {
    /// The host name it announces (`--hostname` of the real servers).
    #[arg(long)]
    hostname: String,
    /// The address it listens on.
    #[arg(long)]
    ip: Ipv4Addr,
    /// ZooKeeper connect string: host:port,host:port,…
    #[arg(long)]
    zk: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = run_tool(&cli.server) {
        return code;
    }
    let (server, c) = match cli.server {
        Server::BuildId => {
            println!("{}", succession::service::standins::BUILD_ID);
            return ExitCode::SUCCESS;
        }
        // Synchronous (FUSE worker threads and a signal loop): no runtime.
        Server::Faultfs(args) => return run_faultfs(args),
        Server::Agent => return run_agent(),
        Server::MesosMaster(c) => ("mesos-master", c),
        Server::Marathon(c) => ("marathon", c),
        Server::App(c) => ("app", c),
        // The tools ran above.
        _ => return ExitCode::FAILURE,
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let options = Options {
        hostname: c.hostname,
        ip: c.ip,
        zk: c.zk,
    };
    let result = runtime.block_on(async {
        match server {
            "mesos-master" => mesos::run(options).await,
            "marathon" => marathon::run(options).await,
            _ => app::run(options).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failed to serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A runtime on this thread; None (and said why) when it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("failed to start the runtime: {e}");
            None
        }
    }
}

fn run_agent() -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let served = runtime.block_on(succession::node_tools::agent::serve(
        tokio::io::stdin(),
        tokio::io::stdout(),
    ));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failed to serve the harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_faultfs(args: FaultfsArgs) -> ExitCode {
    let options = FaultfsOptions {
        durable: args.durable,
        live: args.live,
        mount: args.mount,
        control: args.control,
        stats: args.stats,
        fsname: args.fsname,
    };
    match faultfs::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error's own message starts with "failed to …".
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one of the fault tools that print a result; None when the command is another.
fn run_tool(server: &Server) -> Option<ExitCode> {
    use std::time::Duration;
    use succession::node_tools::{delay_queue, timing};
    let printed = match server {
        Server::DelayQueue(a) => delay_queue::run(&delay_queue::DelayOptions {
            queue: a.queue,
            delay: Duration::from_millis(a.delay_ms),
            jitter: Duration::from_millis(a.jitter_ms),
            max_packets: a.max_packets,
            stats: a.stats.clone(),
            mark_bit: a.mark_bit,
        })
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::to_string(&s).map_err(|e| e.to_string())),
        Server::ConnectTime(a) => {
            timing::connect_times(a.to, a.count, Duration::from_millis(a.timeout_ms))
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::to_string(&t).map_err(|e| e.to_string()))
        }
        Server::FsyncTime(a) => timing::fsync_times(&a.dir, a.count)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::to_string(&t).map_err(|e| e.to_string())),
        _ => return None,
    };
    Some(match printed {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    })
}
