//! Multi-process cases: the benchmark binary re-executes itself with `--role NAME` and
//! `--key value` arguments; the parent waits for its children with a deadline and kills
//! them when it passes, so a stuck child costs seconds, never a hung run.

use std::collections::HashMap;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The argument that makes the binary a child.
pub const ROLE_ARG: &str = "--role";

/// `--key value` pairs of a child's command line.
#[derive(Debug, Default, Clone)]
pub struct RoleArgs(HashMap<String, String>);

impl RoleArgs {
    /// Parses `--key value` pairs (after the role name).
    pub fn parse(args: &[String]) -> RoleArgs {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let k = k.trim_start_matches("--").to_owned();
            let v = it.next().cloned().unwrap_or_default();
            map.insert(k, v);
        }
        RoleArgs(map)
    }

    /// A string argument (panics with its name when missing: a harness bug).
    pub fn str(&self, k: &str) -> &str {
        self.0
            .get(k)
            .unwrap_or_else(|| panic!("child role: missing --{k}"))
    }

    /// A numeric argument.
    pub fn u64(&self, k: &str) -> u64 {
        self.str(k)
            .parse()
            .unwrap_or_else(|_| panic!("child role: --{k} is not a number"))
    }
}

/// Starts this binary as a child playing `role`; stdout piped when `piped`.
pub fn spawn(role: &str, args: &[(&str, String)], piped: bool) -> Child {
    let exe = std::env::current_exe().expect("current executable");
    let mut cmd = Command::new(exe);
    cmd.arg(ROLE_ARG).arg(role);
    for (k, v) in args {
        cmd.arg(format!("--{k}")).arg(v);
    }
    if piped {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
    }
    cmd.spawn().expect("spawn benchmark child")
}

/// Waits for every child until `deadline`; kills those still running then. Returns
/// each exit status, or `None` for a child that had to be killed.
pub fn wait_all(children: &mut [Child], deadline: Instant) -> Vec<Option<ExitStatus>> {
    let mut out: Vec<Option<ExitStatus>> = vec![None; children.len()];
    loop {
        let mut running = false;
        for (c, o) in children.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match c.try_wait() {
                    Ok(Some(s)) => *o = Some(s),
                    Ok(None) => running = true,
                    Err(_) => {}
                }
            }
        }
        if !running {
            return out;
        }
        if Instant::now() >= deadline {
            for (c, o) in children.iter_mut().zip(out.iter()) {
                if o.is_none() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
            return out;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills children that run until told to stop (readers of the fairness case).
pub fn kill_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
