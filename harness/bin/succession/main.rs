//! The `succession` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use succession::{on_kept, on_provider};

mod clusters;
#[cfg(feature = "ec2")]
mod ec2;
mod explore;
mod reports;

use clusters::{exec, kept_run, print_status, up, write_inventory};
use reports::{check, redraw, summarize};

use clap::{Parser, Subcommand, ValueEnum};

use succession::cluster::Cluster;
use succession::exit::{Exit, EXIT_CODES_HELP};
use succession::preflight::{self, Inventory};
use succession::provider::choice::{self, ProviderKind};
use succession::provider::containers::{engine, image};
use succession::provider::{DryRunError, Hosts, Provider};
use succession::report::{render_step_line, render_summary};
use succession::report::{Event, Reporter};
use succession::scenario::Scenario;
use succession::session::{self, RunOptions};
use succession::source::{InputError, SourceFile};
use succession::spec::Topology;

#[derive(Parser)]
#[command(name = "succession", version, about = "Chaos and verification harness for leader-elected control planes", after_help = EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// `succession run`'s arguments (no doc comment: clap would take it for the command's help).
#[derive(clap::Args)]
struct RunArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// Write report.json and junit.xml here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Leave the cluster up afterwards (`succession down` removes it).
    #[arg(long)]
    keep: bool,
    /// Replay a run: the seed its report names.
    #[arg(long)]
    seed: Option<u64>,
    /// Use this topology instead of the scenario's own.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Where the nodes live (default: the topology's `[provider] kind`, else local).
    #[arg(long, value_enum)]
    provider: Option<ProviderKind>,
    /// The containers provider's node image (default: the one `succession image build` makes).
    #[arg(long)]
    image: Option<String>,
    /// Print what would be launched and ask the provider to check it, launching nothing
    /// (EC2's DryRun).
    #[arg(long)]
    dry_run: bool,
}

// `succession gc`'s arguments.
#[derive(clap::Args)]
struct GcArgs {
    /// Also remove clusters left up on purpose (`up`, `run --keep`).
    #[arg(long)]
    all: bool,
    /// Only this provider's leftovers (default: every provider's).
    #[arg(long, value_enum)]
    provider: Option<ProviderKind>,
    /// EC2: also look in this region for instances of runs this machine has no record of
    /// (found by their `succession.run` tag).
    #[arg(long)]
    region: Option<String>,
    /// EC2: the API's endpoint, for an emulator.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// EC2: only instances without a record launched at least this long ago (`3h`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    older_than: std::time::Duration,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario: bring up its topology, run its steps, tear everything down, report.
    Run(RunArgs),
    /// Run seeded random fault schedules on fresh clusters, check the invariants all along, and
    /// shrink a failure to a minimal scenario file that replays it.
    Explore(explore::ExploreArgs),
    /// Bring a topology up and leave it running for exploration.
    Up {
        /// The topology file.
        topology: PathBuf,
        /// Seed for MAC addresses.
        #[arg(long)]
        seed: Option<u64>,
        /// Where the nodes live (default: the topology's `[provider] kind`, else local).
        #[arg(long, value_enum)]
        provider: Option<ProviderKind>,
        /// The containers provider's node image (default: the one `succession image build` makes).
        #[arg(long)]
        image: Option<String>,
    },
    /// Tear down a cluster left up by `up` or `run --keep`.
    Down {
        /// The run id (needed only when several are up).
        #[arg(long)]
        run: Option<String>,
        /// Only consider clusters of this provider.
        #[arg(long, value_enum)]
        provider: Option<ProviderKind>,
    },
    /// Show the nodes and the state of every service of a cluster that is up.
    Status {
        /// The run id (needed only when several are up).
        #[arg(long)]
        run: Option<String>,
        /// Only consider clusters of this provider.
        #[arg(long, value_enum)]
        provider: Option<ProviderKind>,
    },
    /// Run a command on a node, or on every node of a role, of a cluster that is up.
    Exec {
        /// A node (`quorum-1` or its full name) or a role (`quorum`).
        target: String,
        /// The run id (needed only when several are up).
        #[arg(long)]
        run: Option<String>,
        /// Only consider clusters of this provider.
        #[arg(long, value_enum)]
        provider: Option<ProviderKind>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// List every action and expectation a scenario step can take, with its keys and help.
    Steps,
    /// Validate scenario and topology files without starting anything.
    Lint {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check scenarios against this provider's capabilities (default: each topology's
        /// `[provider] kind`, else local).
        #[arg(long, value_enum)]
        provider: Option<ProviderKind>,
    },
    /// Judge a run's recorded histories again, offline: the write ledger (history.json) and
    /// every consistency checker over the workload's history (workload.json).
    Check {
        /// A directory written by `run --report DIR`.
        report: PathBuf,
        /// How many configurations the linearizability search may visit per key before its
        /// verdict is unknown (exit 4): raise it for a long history.
        #[arg(long, default_value_t = succession::workload::DEFAULT_SEARCH_BUDGET)]
        search_budget: u64,
    },
    /// Draw a run's timeline again from a report directory (timeline.html, timeline.svg).
    Report {
        /// A directory written by `run --report DIR`.
        report: PathBuf,
    },
    /// Sum up where a run's time went: the spans written while SUCCESSION_TRACE named FILE
    /// (engine calls, commands on nodes, service starts, the run's phases), by name.
    Trace {
        /// The file SUCCESSION_TRACE named.
        file: PathBuf,
    },
    /// Sum up every run under a directory (nightly pipelines): pass rate per scenario and
    /// provider, medians and spreads, ledger losses; writes summary.json and index.html there
    /// and exits by the worst verdict.
    Summary {
        /// A directory holding report directories (`run --report DIR/…`), at any depth.
        dir: PathBuf,
    },
    /// Check a live cell before an upgrade, changing nothing: etcd, ZooKeeper (ids against the
    /// upgrade's), Mesos/Marathon leaders, neighbour tables.
    Preflight {
        /// The inventory of the cell (`succession inventory` writes one for a cluster that is up).
        #[arg(long)]
        inventory: PathBuf,
        /// `table` for people, `json` for pipelines.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Exit 0 when checks only warned (otherwise a warning exits 5).
        #[arg(long)]
        allow_warnings: bool,
        /// Also write the checks as a JUnit XML report to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write a replica of the cell (topology.toml) and the upgrade to rehearse on it
        /// (upgrade.toml, and safe-upgrade.toml after the safe renumbering) into this directory.
        #[arg(long, value_name = "DIR")]
        rehearse: Option<PathBuf>,
    },
    /// Write the inventory of a cluster that is up, for `succession preflight`.
    Inventory {
        /// The run id (needed only when several are up).
        #[arg(long)]
        run: Option<String>,
        /// Write it to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Only consider clusters of this provider.
        #[arg(long, value_enum)]
        provider: Option<ProviderKind>,
    },
    /// Remove everything that killed runs left behind.
    Gc(GcArgs),
    /// The containers provider's node image.
    Image {
        #[command(subcommand)]
        action: ImageAction,
    },
    /// A simulated EC2 region on this machine (moto on loopback; every instance a container):
    /// try the EC2 provider with no AWS account. Runs until Ctrl-C.
    #[cfg(feature = "ec2")]
    Ec2Sim {
        /// The emulator's port on 127.0.0.1.
        #[arg(long, default_value_t = 5000)]
        port: u16,
        /// The region's subnet (a /24).
        #[arg(long, default_value = "10.213.250.0")]
        subnet: std::net::Ipv4Addr,
        /// The instances' image (default: the node image).
        #[arg(long)]
        image: Option<String>,
        /// Also write the topology lines that run in the region to this file.
        #[arg(long)]
        write_topology_lines: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImageAction {
    /// Make the node image (debootstrap, Debian's packages, import) unless it is present.
    Build {
        /// Build it again even when present.
        #[arg(long)]
        force: bool,
    },
    /// Print the reference of the image runs use by default.
    Name,
}

/// How `preflight` prints.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// An aligned table with the evidence, then the ZooKeeper renumbering when one is needed.
    Table,
    /// One JSON document.
    Json,
}

/// Prints progress to the terminal as it happens.
struct Terminal;

/// Writes to standard output; a closed pipe (`succession run … | head`) must not stop a run
/// before it has torn down what it created, so write errors are ignored.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

impl Reporter for Terminal {
    fn event(&self, event: &Event) {
        match event {
            Event::Note(line) => say(&format!("{line}\n")),
            Event::StepFinished { step, total } => {
                say(&format!("{}\n", render_step_line(step, *total)))
            }
            // The rest is summed up at the end (render_summary).
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = succession::base::trace::install_from_env() {
        eprintln!(
            "error: cannot write the trace that {} names: {e}",
            succession::base::trace::TRACE_ENV
        );
        return ExitCode::from(Exit::InvalidInput.code() as u8);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(Exit::Environment.code() as u8);
        }
    };
    let exit = runtime.block_on(dispatch(cli.command));
    ExitCode::from(exit.code() as u8)
}

async fn dispatch(command: Command) -> Exit {
    match command {
        Command::Explore(args) => explore::explore(args).await,
        Command::Run(args) => run(args).await,
        Command::Up {
            topology,
            seed,
            provider,
            image,
        } => up(&topology, seed, provider, image).await,
        Command::Down { run, provider } => down(run.as_deref(), provider),
        Command::Status { run, provider } => match kept_run(run.as_deref(), provider) {
            Ok(kept) => {
                on_kept!(kept, hosts => print_status(Cluster::new(hosts)).await);
                Exit::Pass
            }
            Err(e) => e,
        },
        Command::Exec {
            target,
            run,
            provider,
            command,
        } => match kept_run(run.as_deref(), provider) {
            Ok(kept) => on_kept!(kept, hosts => exec(hosts, &target, &command).await),
            Err(e) => e,
        },
        Command::Steps => {
            print!("{}", succession::steps::render());
            Exit::Pass
        }
        Command::Lint { files, provider } => lint(&files, provider),
        Command::Check {
            report,
            search_budget,
        } => check(&report, search_budget),
        Command::Report { report } => redraw(&report),
        Command::Summary { dir } => summarize(&dir),
        Command::Trace { file } => reports::trace(&file),
        Command::Preflight {
            inventory,
            format,
            allow_warnings,
            junit,
            rehearse,
        } => {
            run_preflight(
                &inventory,
                format,
                allow_warnings,
                junit.as_deref(),
                rehearse.as_deref(),
            )
            .await
        }
        Command::Inventory {
            run,
            output,
            provider,
        } => match kept_run(run.as_deref(), provider) {
            Ok(kept) => on_kept!(kept, hosts => write_inventory(&hosts, output.as_deref())),
            Err(e) => e,
        },
        Command::Gc(args) => gc(args),
        #[cfg(feature = "ec2")]
        Command::Ec2Sim {
            port,
            subnet,
            image,
            write_topology_lines,
        } => ec2::simulate(port, subnet, image, write_topology_lines.as_deref()).await,
        Command::Image { action } => image_command(action).await,
    }
}

/// `succession run`: one scenario on the chosen provider, its summary printed.
async fn run(args: RunArgs) -> Exit {
    let RunArgs {
        scenario,
        report,
        keep,
        seed,
        topology,
        provider,
        image,
        dry_run,
    } = args;
    let loaded = match Scenario::load(&scenario, topology.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    let chosen = match choice::choose(provider, image, &loaded.topology) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    if dry_run {
        // A run refuses this inside `session::run`; a dry run must refuse it too.
        if let Err(e) = loaded.refuse_unmet(chosen.kind().name(), chosen.capabilities()) {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
        let say = |line: &str| println!("{line}");
        return match on_provider!(chosen, p => p.dry_run(&loaded.topology, &say).await) {
            Ok(done) => {
                println!("{done}");
                Exit::Pass
            }
            Err(e @ DryRunError::NotOffered(_)) => {
                eprintln!("error: {e}");
                Exit::InvalidInput
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Environment
            }
        };
    }
    let options = RunOptions {
        scenario,
        topology,
        report_dir: report.clone(),
        keep,
        seed,
    };
    let outcome = on_provider!(chosen, p => session::run(&p, &options, &Terminal).await);
    match outcome {
        Ok(outcome) => {
            say(&render_summary(&outcome.report));
            if let Some(dir) = report {
                say(&format!(
                    "  report: {}\n",
                    dir.join("report.json").display()
                ));
            }
            outcome.exit
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::InvalidInput
        }
    }
}

/// `succession down`: removes a kept run.
fn down(run: Option<&str>, provider: Option<ProviderKind>) -> Exit {
    match kept_run(run, provider) {
        Ok(kept) => on_kept!(kept, hosts => {
            let id = hosts.record().id.clone();
            let nodes = hosts.record().nodes.len();
            hosts.destroy();
            println!("run {id}: removed {nodes} nodes and everything they ran");
            Exit::Pass
        }),
        Err(e) => e,
    }
}

/// `succession gc`: removes what killed runs left, on one provider or all.
fn gc(args: GcArgs) -> Exit {
    let mut anything = false;
    let strays = succession::provider::StraySearch {
        region: args.region,
        endpoint_url: args.endpoint_url,
        older_than: args.older_than,
    };
    for (name, report) in choice::gc(args.provider, args.all, &strays) {
        for line in &report.removed {
            println!("removed {line} ({name})");
        }
        for line in &report.strays {
            println!("removed stray {line} ({name})");
        }
        for line in &report.left {
            println!("left {line} ({name})");
        }
        anything |= !report.removed.is_empty() || !report.strays.is_empty();
    }
    if !anything {
        println!("nothing to remove");
    }
    Exit::Pass
}

/// `succession image name|build`.
async fn image_command(action: ImageAction) -> Exit {
    match action {
        ImageAction::Name => {
            println!("{}", image::default_image());
            Exit::Pass
        }
        ImageAction::Build { force } => {
            let engine = match engine::Engine::connect().await {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Environment;
                }
            };
            let say = |line: &str| println!("{line}");
            match image::build(&engine, force, &say).await {
                Ok(_) => Exit::Pass,
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::Environment
                }
            }
        }
    }
}

async fn run_preflight(
    path: &Path,
    format: Format,
    allow_warnings: bool,
    junit: Option<&Path>,
    rehearse: Option<&Path>,
) -> Exit {
    let inventory = match Inventory::load(path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    let observations = preflight::observe(&inventory).await;
    let mut result = preflight::evaluate(&inventory, &observations);
    result.allow_warnings = allow_warnings;
    if let Some(dir) = rehearse {
        match preflight::rehearse::write(dir, &inventory, &observations, &result) {
            Ok(r) => eprintln!(
                "rehearsal written: {} (a replica of the cell); rehearse the upgrade with\n  succession run {} --provider containers   (expected to fail when the ids conflict)\n  succession run {} --provider containers   (the safe renumbering first)",
                r.topology.display(),
                r.upgrade.display(),
                r.safe_upgrade.display()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Environment;
            }
        }
    }
    if let Some(file) = junit {
        let written = preflight::render_junit(&result)
            .map_err(|e| e.to_string())
            .and_then(|xml| {
                std::fs::write(file, xml)
                    .map_err(|e| format!("failed to write {}: {e}", file.display()))
            });
        if let Err(e) = written {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    }
    match format {
        Format::Table => print!("{}", preflight::render_table(&result)),
        Format::Json => print!("{}", preflight::render_json(&result)),
    }
    for u in &result.unreachable {
        eprintln!("error: cannot reach {u}");
    }
    preflight::exit_of(&result)
}

fn lint(files: &[PathBuf], provider: Option<ProviderKind>) -> Exit {
    let mut bad = 0;
    for file in files {
        match lint_one(file, provider) {
            Ok(summary) => println!("ok: {} ({summary})", file.display()),
            Err(e) => {
                bad += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if bad == 0 {
        Exit::Pass
    } else {
        eprintln!("{bad} of {} files invalid", files.len());
        Exit::InvalidInput
    }
}

fn lint_one(file: &Path, provider: Option<ProviderKind>) -> Result<String, InputError> {
    let source = SourceFile::read(file)?;
    let looks_like_scenario = toml::from_str::<toml::Table>(&source.text)
        .map(|t| t.contains_key("step") || t.contains_key("topology"))
        .unwrap_or(false);
    if looks_like_scenario {
        let scenario = Scenario::load(file, None)?;
        let kind = choice::kind_for(provider, &scenario.topology);
        let checked = match kind.capabilities() {
            Some(has) => {
                scenario.refuse_unmet(kind.name(), has)?;
                format!("{} provider", kind.name())
            }
            None => format!(
                "the {} provider is not in this build: what the steps need of it is unchecked",
                kind.name()
            ),
        };
        Ok(format!(
            "scenario, {} steps, topology {}, {checked}",
            scenario.steps.len(),
            scenario.topology.file.display()
        ))
    } else {
        let topology = Topology::parse(&source)?;
        Ok(format!("topology, {} nodes", topology.nodes().len()))
    }
}
