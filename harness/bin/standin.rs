//! `succession-standin`: the stand-in servers (mesos-master, marathon) and the demo app that
//! the local provider runs inside node namespaces.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (server, c) = match cli.server {
        Server::BuildId => {
            println!("{}", succession::service::standins::BUILD_ID);
            return ExitCode::SUCCESS;
        }
        Server::MesosMaster(c) => ("mesos-master", c),
        Server::Marathon(c) => ("marathon", c),
        Server::App(c) => ("app", c),
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
