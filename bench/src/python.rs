//! Case 9: Python's `filelock`, `fasteners` and `portalocker`, timed by `bench/peers.py`
//! in the same run (when `SCANLOCK_BENCH_PYTHON` or `--python` names an interpreter
//! that has them).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the Python that runs `peers.py`.
pub const PYTHON_ENV: &str = "SCANLOCK_BENCH_PYTHON";
/// The script, where the source tree is.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers.py");

/// One Python contender.
#[derive(Clone, Debug)]
pub struct PyRow {
    /// Library and API.
    pub name: String,
    /// Median per acquire+release, ns.
    pub median_ns: f64,
    /// Package version.
    pub version: String,
}

/// The outcome of the Python step.
#[derive(Clone, Debug)]
pub enum PyResult {
    /// Not run, and why.
    Skipped(String),
    /// The rows, and notes the script printed.
    Ran(Vec<PyRow>, Vec<String>),
}

/// Runs `peers.py` with `python`, in `dir`, for `rounds` rounds of `batch_ms` batches.
pub fn run(python: Option<&str>, dir: &Path, rounds: usize, batch_ms: f64) -> PyResult {
    let Some(python) = python else {
        return PyResult::Skipped(format!(
            "skipped: set {PYTHON_ENV} to a Python with filelock, fasteners and portalocker"
        ));
    };
    if !Path::new(SCRIPT).exists() {
        return PyResult::Skipped(format!("skipped: {SCRIPT} not found"));
    }
    let child = Command::new(python)
        .arg(SCRIPT)
        .arg("--dir")
        .arg(dir)
        .arg("--rounds")
        .arg(rounds.to_string())
        .arg("--batch-ms")
        .arg(batch_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return PyResult::Skipped(format!("skipped: cannot run {python}: {e}")),
    };
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let st = crate::child::wait_all(
        std::slice::from_mut(&mut child),
        Instant::now() + Duration::from_secs(300),
    );
    let text = reader.join().unwrap_or_default();
    let ok = matches!(st.first(), Some(Some(s)) if s.success());
    if !ok {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let last = err.lines().last().unwrap_or("killed at the deadline");
        return PyResult::Skipped(format!("skipped: peers.py failed: {last}"));
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for line in text.lines() {
        if let Some(note) = line.strip_prefix("# ") {
            notes.push(note.to_owned());
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if let [name, ns, version] = f[..]
            && let Ok(ns) = ns.parse()
        {
            rows.push(PyRow {
                name: name.to_owned(),
                median_ns: ns,
                version: version.to_owned(),
            });
        }
    }
    PyResult::Ran(rows, notes)
}
