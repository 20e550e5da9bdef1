//! The servers under test as child processes: started with a configuration in the environment,
//! their output kept in a log file, their CPU time and memory read from `/proc`.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// A server child process, killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
}

impl Server {
    /// Starts `command`, copies its output to `log`, and waits (at most 60 s) for the line
    /// `Listening on http://ADDRESS` that says it accepts connections.
    pub fn start(mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        let (found, listening) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().context("no stdout")?) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().context("no stderr")?),
        ] {
            let found = found.clone();
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
            std::thread::spawn(move || {
                use std::io::Write as _;
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(address) = line.split("Listening on http://").nth(1) {
                        let _ = found.send(address.trim().to_owned());
                    }
                    let _ = writeln!(file, "{line}");
                }
            });
        }
        let address = match listening.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                anyhow::bail!("the server did not start; its output is in {}", log.display());
            }
        };
        let address = address.parse().with_context(|| format!("unexpected listening address {address}"))?;
        Ok(Self { child, address })
    }

    /// The process's CPU time so far (user and system).
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(&self.child.id().to_string())
    }

    /// The resident memory now, in MiB, from `/proc/<pid>/status`.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or_default();
        kib / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This process's CPU time so far (user and system).
pub fn own_cpu_time() -> Duration {
    cpu_time_of("self")
}

/// The CPU time (user and system) of `/proc/<process>`, from its `stat`.
fn cpu_time_of(process: &str) -> Duration {
    let ticks_per_second = 100.0; // USER_HZ, 100 on every Linux this runs on.
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    Duration::from_secs_f64((ticks(11) + ticks(12)) / ticks_per_second)
}

/// Runs `command` to completion, its output appended to `log`.
pub fn run(mut command: Command, log: &Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let status =
        command.stdout(file.try_clone()?).stderr(file).status().with_context(|| format!("cannot run {command:?}"))?;
    anyhow::ensure!(status.success(), "{command:?} failed; its output is in {}", log.display());
    Ok(())
}
