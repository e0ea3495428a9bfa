//! The EC2 provider end to end against the simulated region (`succession ec2-sim`: moto's EC2
//! API on loopback, every instance a container at its private address running sshd and its
//! user data): the quorum and master scenarios and packet delays, the tag guard, the dry run, and `gc` after a
//! killed run. Built with `--features ec2`; needs root, Docker, the node image and moto
//! (`ci/setup-host` installs it), and fails naming what is missing when `CI` is set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

mod support;
use support::*;

/// The simulated region, stopped (and its containers removed) when dropped.
struct Region {
    child: Child,
    lines: String,
}

impl Region {
    /// The region's subnet id, from the lines it printed.
    fn subnet_id(&self) -> Result<String, Failed> {
        Ok(self
            .lines
            .lines()
            .find_map(|l| l.strip_prefix("subnet_id = "))
            .ok_or("no subnet id")?
            .trim_matches('"')
            .to_string())
    }
}

/// boto3: launches one instance in the subnet `argv[2]` with the tags of the JSON `argv[3]`.
const LAUNCH: &str = "r=c.run_instances(ImageId='ami-760aaa0f',MinCount=1,MaxCount=1,SubnetId=sys.argv[2],TagSpecifications=[{'ResourceType':'instance','Tags':[{'Key':k,'Value':v} for k,v in json.loads(sys.argv[3]).items()]}] if sys.argv[3]!='{}' else []);print(r['Instances'][0]['InstanceId'])";

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

fn start_region(port: u16, subnet: &str) -> Result<Region, Failed> {
    let lines_file = std::env::temp_dir().join(format!("succession-ec2-lines-{port}"));
    let mut child = succession()
        .args(["ec2-sim", "--port", &port.to_string(), "--subnet", subnet])
        .arg("--write-topology-lines")
        .arg(&lines_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("ec2-sim: {line}");
            if tx.send(line).is_err() {
                // Keep draining so the region never blocks on a full pipe.
                continue;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with("ready:") => {
                let lines = std::fs::read_to_string(&lines_file)?;
                return Ok(Region { child, lines });
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(format!("ec2-sim exited early: {status}")));
        }
    }
    let _ = child.kill();
    Err(fail("the simulated region never became ready"))
}

/// The seed's cell as a topology of the simulated region.
fn ec2_topology(region: &Region, name: &str) -> Result<PathBuf, Failed> {
    let cell = std::fs::read_to_string(root_dir().join("topologies/cell.toml"))?;
    let subnet_line = region
        .lines
        .lines()
        .find(|l| l.starts_with("subnet = "))
        .ok_or("no subnet line")?;
    let ec2_block = region
        .lines
        .split("[provider.ec2]")
        .nth(1)
        .ok_or("no [provider.ec2] block")?;
    let text = cell
        .replace("subnet = \"auto\"", subnet_line)
        .replace("[provider]\n", "[provider]\nkind = \"ec2\"\n")
        + "\n[provider.ec2]"
        + ec2_block;
    let path = root_dir()
        .join("target")
        .join(format!("ec2-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn missing() -> Option<String> {
    On::Containers.missing().or_else(|| {
        let moto = Command::new("sh")
            .args(["-c", "command -v moto_server"])
            .output()
            .is_ok_and(|o| o.status.success());
        (!moto).then(|| "needs moto's server (pip install 'moto[server]'; ci/setup-host)".into())
    })
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("ec2::quorum_and_master_scenarios_pass", scenarios_pass),
        Trial::test("ec2::dry_run_launches_nothing", dry_run),
        Trial::test("ec2::gc_after_sigkill_terminates_the_run", gc_after_sigkill),
        Trial::test("ec2::the_tag_guard_refuses_other_instances", tag_guard),
        Trial::test("ec2::gc_finds_runs_without_a_record_by_tag", gc_strays),
        Trial::test("ec2::up_status_exec_down", up_status_exec_down),
    ];
    libtest_mimic::run(&args, gate(trials, missing())).exit();
}

fn instances_of(port: u16) -> Result<serde_json::Value, Failed> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import boto3,json,sys;c=boto3.client('ec2',region_name='us-east-1',endpoint_url=sys.argv[1],aws_access_key_id='x',aws_secret_access_key='x');print(json.dumps([{'id':i['InstanceId'],'state':i['State']['Name'],'tags':{t['Key']:t['Value'] for t in i.get('Tags',[])}} for r in c.describe_instances()['Reservations'] for i in r['Instances']]))",
        ])
        .arg(format!("http://127.0.0.1:{port}"))
        .output()?;
    serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("{e}: {}", String::from_utf8_lossy(&out.stderr))))
}

fn scenarios_pass() -> TestResult {
    let region = start_region(5101, "10.213.251.0")?;
    let topology = ec2_topology(&region, "cell")?;
    for scenario in [
        "scenarios/quorum-destroy-restore.toml",
        "scenarios/master-destroy-restore.toml",
        // Packet delays: the delay queue and its timers, copied to the nodes that need them.
        "tests/fixtures/scenarios/delay-and-heal.toml",
    ] {
        let dir = report_dir(&format!(
            "ec2-{}",
            Path::new(scenario).file_stem().unwrap().to_string_lossy()
        ));
        let out = succession()
            .args(["run", scenario, "--topology"])
            .arg(&topology)
            .arg("--report")
            .arg(&dir)
            .output()?;
        if out.status.code() != Some(0) {
            return Err(fail(format!("{scenario} on EC2\n{}", output_text(&out))));
        }
        let report = read_report(&dir)?;
        if report["provider"] != "ec2" {
            return Err(fail(format!("not run on ec2: {}", report["provider"])));
        }
        let run = report["run_id"].as_str().unwrap_or_default().to_string();
        // Every instance of the run, the replaced one included, is terminated.
        let left: Vec<serde_json::Value> = instances_of(5101)?
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i["tags"]["succession.run"] == run.as_str() && i["state"] != "terminated")
            .collect();
        if !left.is_empty() {
            return Err(fail(format!("instances left running: {left:?}")));
        }
    }
    Ok(())
}

fn dry_run() -> TestResult {
    let region = start_region(5102, "10.213.252.0")?;
    let topology = ec2_topology(&region, "dry")?;
    let out = succession()
        .args([
            "run",
            "scenarios/quorum-destroy-restore.toml",
            "--dry-run",
            "--topology",
        ])
        .arg(&topology)
        .output()?;
    let text = output_text(&out);
    if out.status.code() != Some(0)
        || !text.contains("would launch 10 instances")
        || !text.contains("quorum-1.cell-1.dc-1.demo.lan")
        || !text.contains("EC2 accepts every launch (DryRun); nothing was launched")
    {
        return Err(fail(format!("unexpected dry run\n{text}")));
    }
    let launched = instances_of(5102)?;
    if launched.as_array().is_some_and(|a| !a.is_empty()) {
        return Err(fail(format!("a dry run launched {launched}")));
    }
    Ok(())
}

fn gc_after_sigkill() -> TestResult {
    let region = start_region(5103, "10.213.253.0")?;
    let topology = ec2_topology(&region, "gc")?;
    let mut child = succession()
        .args(["run", "tests/fixtures/scenarios/hold.toml", "--topology"])
        .arg(&topology)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut run_id = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(rest) = line.split("(run ").nth(1) {
            run_id = rest.trim_end_matches(')').chars().take(6).collect();
        }
        if line.starts_with("cluster healthy") {
            break;
        }
    }
    child.kill()?;
    child.wait()?;
    let running = |port| -> Result<usize, Failed> {
        Ok(instances_of(port)?
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|i| i["tags"]["succession.run"] == run_id.as_str() && i["state"] == "running")
            .count())
    };
    // The dead-man switch of every instance of the run: shutdown behaviour `terminate`, and a
    // shutdown scheduled by its user data.
    let switches = boto(
        5103,
        "ids=[i['InstanceId'] for r in c.describe_instances(Filters=[{'Name':'tag:succession.run','Values':[sys.argv[2]]}])['Reservations'] for i in r['Instances']];import base64;print(json.dumps([[c.describe_instance_attribute(InstanceId=i,Attribute='instanceInitiatedShutdownBehavior')['InstanceInitiatedShutdownBehavior']['Value'],'shutdown -h +' in base64.b64decode(c.describe_instance_attribute(InstanceId=i,Attribute='userData')['UserData']['Value']).decode()] for i in ids]))",
        &[&run_id],
    )?;
    let switches: serde_json::Value = serde_json::from_str(&switches)?;
    let armed = switches
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(|s| s[0] == "terminate" && s[1] == true));
    if !armed {
        return Err(fail(format!(
            "instances without their dead-man switch: {switches}"
        )));
    }
    if run_id.len() != 6 || running(5103)? == 0 {
        return Err(fail(format!(
            "the killed run {run_id:?} should have left instances"
        )));
    }
    let out = succession().args(["gc", "--provider", "ec2"]).output()?;
    if !out.status.success() || running(5103)? != 0 {
        return Err(fail(format!(
            "gc left instances running\n{}",
            output_text(&out)
        )));
    }
    // Nor its record, nor its SSH connections.
    let state = runs_root().join(&run_id);
    let masters = Command::new("pgrep")
        .args(["-f", &format!("{}/ssh/", state.display())])
        .output()?;
    // A state directory that cannot be looked at is not gone.
    if state.try_exists().unwrap_or(true) || !masters.stdout.is_empty() {
        return Err(fail(format!(
            "gc left the run's state or SSH connections: {} {}",
            state.display(),
            String::from_utf8_lossy(&masters.stdout)
        )));
    }
    Ok(())
}

fn boto(port: u16, code: &str, args: &[&str]) -> Result<String, Failed> {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import boto3,json,sys;c=boto3.client('ec2',region_name='us-east-1',endpoint_url=sys.argv[1],aws_access_key_id='x',aws_secret_access_key='x');{code}"),
        ])
        .arg(format!("http://127.0.0.1:{port}"))
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(fail(format!(
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// No mutating call touches an instance without the run's tag: one untagged and one of
/// another run, both refused by the provider's own terminate, both still running after.
fn tag_guard() -> TestResult {
    let port = 5104;
    let region = start_region(port, "10.213.254.0")?;
    let subnet_id = region.subnet_id()?;
    let untagged = boto(port, LAUNCH, &[&subnet_id, "{}"])?;
    let other = boto(
        port,
        LAUNCH,
        &[&subnet_id, r#"{"succession.run": "ffffff"}"#],
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    rt.block_on(async {
        let ec2 = succession::provider::ec2::api::Ec2::connect("us-east-1", Some(&endpoint)).await;
        for id in [&untagged, &other] {
            match ec2.terminate("a1b2c3", id).await {
                Err(succession::provider::ec2::api::Ec2Error::NotOurs { .. }) => {}
                other => {
                    return Err(fail(format!(
                        "terminate of {id} was not refused: {other:?}"
                    )))
                }
            }
        }
        Ok(())
    })?;
    let states = instances_of(port)?;
    for id in [&untagged, &other] {
        let running = states.as_array().is_some_and(|a| {
            a.iter()
                .any(|i| i["id"] == id.as_str() && i["state"] == "running")
        });
        if !running {
            return Err(fail(format!("{id} was touched: {states}")));
        }
    }
    Ok(())
}

/// Instances of a run this machine has no record of are found by tag in the region given,
/// only once older than asked; an untagged instance is never touched.
fn gc_strays() -> TestResult {
    let port = 5105;
    let region = start_region(port, "10.213.249.0")?;
    let subnet_id = region.subnet_id()?;
    let stray = boto(
        port,
        LAUNCH,
        &[&subnet_id, r#"{"succession.run": "0ff1ce"}"#],
    )?;
    let untagged = boto(port, LAUNCH, &[&subnet_id, "{}"])?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let gc = |older: &str| {
        succession()
            .args([
                "gc",
                "--provider",
                "ec2",
                "--region",
                "us-east-1",
                "--endpoint-url",
            ])
            .arg(&endpoint)
            .args(["--older-than", older])
            .output()
    };
    let state = |id: &str| -> Result<String, Failed> {
        Ok(instances_of(port)?
            .as_array()
            .and_then(|a| a.iter().find(|i| i["id"] == id))
            .and_then(|i| i["state"].as_str())
            .unwrap_or("missing")
            .to_string())
    };
    let out = gc("1h")?;
    if state(&stray)? != "running" {
        return Err(fail(format!(
            "a young stray was removed\n{}",
            output_text(&out)
        )));
    }
    let out = gc("0s")?;
    let text = output_text(&out);
    if state(&stray)? != "terminated" || !text.contains(&format!("instance {stray} of run 0ff1ce"))
    {
        return Err(fail(format!("the stray was not removed\n{text}")));
    }
    if state(&untagged)? != "running" {
        return Err(fail(format!("an untagged instance was touched\n{text}")));
    }
    Ok(())
}

/// A cluster left up on EC2 is reopened by `status`, `exec` and `down` with the provider that
/// made it; `down` terminates every instance and closes every SSH connection.
fn up_status_exec_down() -> TestResult {
    let port = 5106;
    let region = start_region(port, "10.213.248.0")?;
    let topology = ec2_topology(&region, "up")?;
    let (run_id, text) = bring_up(&[&topology])?;
    if !text.contains("(ec2 provider)") {
        return Err(fail(format!("up failed\n{text}")));
    }
    let result = (|| -> TestResult {
        let out = succession().args(["status", "--run", &run_id]).output()?;
        if !out.status.success()
            || String::from_utf8_lossy(&out.stdout)
                .matches("active  running")
                .count()
                != 16
        {
            return Err(fail(format!(
                "status of the kept cell\n{}",
                output_text(&out)
            )));
        }
        let out = succession()
            .args(["exec", "quorum-2", "--run", &run_id, "--", "hostname"])
            .output()?;
        if !String::from_utf8_lossy(&out.stdout).contains("\nquorum-2.cell-1.dc-1.demo.lan\n") {
            return Err(fail(format!("exec over SSH\n{}", output_text(&out))));
        }
        Ok(())
    })();
    let out = succession().args(["down", "--run", &run_id]).output()?;
    result?;
    let running = instances_of(port)?
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|i| i["tags"]["succession.run"] == run_id.as_str() && i["state"] == "running")
        .count();
    let masters = Command::new("pgrep")
        .args([
            "-f",
            &format!("{}/ssh/", runs_root().join(&run_id).display()),
        ])
        .output()?;
    if !out.status.success() || running != 0 || !masters.stdout.is_empty() {
        return Err(fail(format!(
            "down left {running} instances or SSH connections\n{}",
            output_text(&out)
        )));
    }
    Ok(())
}
