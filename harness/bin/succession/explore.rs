//! `succession explore`: the command line over `succession::explore`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use succession::exit::Exit;
use succession::explore::{self, ExploreError, ExploreOptions, ExploreOutcome};
use succession::provider::choice::{self, ProviderKind};
use succession::spec::capability::Capability;

/// `succession explore`'s arguments.
#[derive(Args)]
pub struct ExploreArgs {
    /// A topology, or a scenario whose topology is explored.
    target: PathBuf,
    /// The seed schedules are drawn from (default: a fresh one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// How many schedules to run, each on a fresh cluster.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Wall-clock budget for runs and shrinking together (e.g. `20m`).
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    budget: Duration,
    /// Where each run's scenario and report, and the shrunk `minimal.toml`, are written
    /// (default: `STATE_ROOT/explore/SEED`, STATE_ROOT being `$SUCCESSION_STATE_DIR` or
    /// `/run/succession`; never the working directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Most faults in one schedule.
    #[arg(long, default_value_t = 4)]
    max_faults: usize,
    /// How many members faults may take down at once (default: a minority of the smallest
    /// service, so a majority is always up; more only when you ask for it).
    #[arg(long)]
    max_down: Option<usize>,
    /// Shortest hold of a fault.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    min_hold: Duration,
    /// Longest hold of a fault.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    max_hold: Duration,
    /// The bound on a leader named by every member after each heal.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    leader_within: Duration,
    /// Least share of requests through the border that must succeed.
    #[arg(long, default_value_t = 0.95)]
    min_availability: f64,
    /// Most live runs spent shrinking a failure.
    #[arg(long, default_value_t = 30)]
    max_shrinks: usize,
    /// Where the nodes live: local or containers (default: the topology's, else local).
    #[arg(long, value_enum)]
    provider: Option<ProviderKind>,
    /// The containers provider's node image.
    #[arg(long)]
    image: Option<String>,
}

/// Runs `succession explore`.
pub async fn explore(args: ExploreArgs) -> Exit {
    let topology = match explore::topology_of(&args.target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::InvalidInput;
        }
    };
    if !(0.0..=1.0).contains(&args.min_availability)
        || args.min_hold > args.max_hold
        || args.runs == 0
    {
        eprintln!(
            "error: --runs must be at least 1, --min-availability from 0 to 1, and --min-hold at most --max-hold"
        );
        return Exit::InvalidInput;
    }
    let chosen = match choice::choose(args.provider, args.image, &topology) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    };
    let seed = args.seed.unwrap_or_else(succession::rng::fresh_seed);
    let options = ExploreOptions {
        target: args.target,
        seed,
        runs: args.runs,
        budget: args.budget,
        // Beside the runs' own state rather than wherever the command was started, where an
        // exploration left in a clone ends up committed.
        out: args.out.unwrap_or_else(|| {
            succession::provider::record::state_root()
                .join("explore")
                .join(seed.to_string())
        }),
        max_faults: args.max_faults.max(1),
        max_down: args.max_down,
        hold_ms: (
            args.min_hold.as_millis() as u64,
            args.max_hold.as_millis() as u64,
        ),
        leader_within: args.leader_within,
        min_availability: args.min_availability,
        max_shrinks: args.max_shrinks,
    };
    let say = |line: &str| eprintln!("{line}");
    // Each schedule needs a fresh cluster: where that is minutes and money, explore does not run.
    if !chosen.capabilities().contains(&Capability::CheapClusters) {
        eprintln!(
            "error: explore needs {} (it brings up a fresh cluster per schedule), which the {} provider does not offer",
            Capability::CheapClusters.describe(),
            chosen.kind().name()
        );
        return Exit::InvalidInput;
    }
    let outcome = succession::on_provider!(chosen, p => explore::explore(&p, &options, &say).await);
    match outcome {
        Ok(outcome) => {
            print_outcome(&outcome, seed, &options.out);
            outcome.exit()
        }
        Err(ExploreError::Input(e)) => {
            eprintln!("error: {e}");
            Exit::InvalidInput
        }
        Err(e @ ExploreError::Interrupted { .. }) => {
            eprintln!("{e}");
            Exit::Interrupted
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment
        }
    }
}

/// The verdict line of an exploration, and the shrunk schedule when something broke.
fn print_outcome(outcome: &ExploreOutcome, seed: u64, out: &std::path::Path) {
    match &outcome.finding {
        Some(f) => {
            println!(
                "FAIL {} — found in {} run(s), shrunk from {} to {} fault(s) in {} live run(s):",
                f.broken.describe(),
                outcome.runs,
                f.found.len(),
                f.shrunk.len(),
                f.shrink_runs
            );
            for (i, fault) in f.shrunk.iter().enumerate() {
                println!("  fault {}: {}", i + 1, fault.describe());
            }
            println!("  scenario: {}", f.scenario.display());
            println!("  replay: {}", f.replay);
        }
        None if outcome.inconclusive > 0 || outcome.runs == 0 => println!(
            "UNKNOWN no invariant broken in {} run(s), but {} had a check with too little evidence{} (seed {seed}; reports in {})",
            outcome.runs,
            outcome.inconclusive,
            if outcome.runs == 0 { " and the budget ran out before the first run" } else { "" },
            out.display()
        ),
        None => println!(
            "PASS every invariant held in {} run(s){} (seed {seed}; reports in {})",
            outcome.runs,
            if outcome.budget_spent {
                ", stopped by the budget"
            } else {
                ""
            },
            out.display()
        ),
    }
}
