//! The operator role: a person (or another tool) with write access to `.locks/` who
//! deletes, truncates and garbles files there while the workers run.
//!
//! Every action is one the lock must survive: exclusion must hold, errors must stay
//! typed, forged or garbled metadata must never be trusted, and planted symlinks must
//! never be followed. Deleting a lock file that someone holds (without holding it
//! oneself) is the one thing no flock-based lock survives; it is only done with
//! `--faults unlink-held`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Config, lock_names};
use crate::events::{EventLog, now_ns};
use crate::rng::Rng;
use crate::worker::{FORGED_USER, Stopper};

struct Operator {
    lockdir: PathBuf,
    victim: PathBuf,
    victim_dir: PathBuf,
    stems: Vec<String>,
    /// Names whose stem is the name itself: plantdb's `.info` applies to them only.
    plain: Vec<usize>,
    log: EventLog,
    rng: Rng,
    /// Planted things to take away again (a symlink in place of a gate would otherwise
    /// fail that name for good), with when.
    pending: Vec<(PathBuf, Instant)>,
    seq: u64,
    unlink_held: bool,
}

fn open_rw(p: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
}

impl Operator {
    fn path(&self, k: usize, suffix: &str) -> PathBuf {
        self.lockdir.join(format!("{}{suffix}", self.stems[k]))
    }

    fn done(&mut self, what: &str) {
        let t = now_ns();
        self.log.line(&format!("F op-{what} {t} {t}"));
    }

    fn garbage(&mut self, max: u64) -> Vec<u8> {
        let n = self.rng.range(1, max);
        let mut v: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
        if self.rng.chance(30) {
            // Plausible garbage: JSON-ish text, digits.
            let samples: [&[u8]; 5] = [
                b"{\"seq\":1,\"holder\":",
                b"{\"pid\": 1, \"lock_type\": \"exclusive\"",
                b"00000000000000000042\n",
                b"{}",
                b"null",
            ];
            v = self.rng.pick(&samples).to_vec();
        }
        v
    }

    /// A random entry of a random name's `.holders/` directory.
    fn random_record(&mut self) -> Option<PathBuf> {
        let k = self.rng.below(self.stems.len() as u64) as usize;
        let entries: Vec<PathBuf> = fs::read_dir(self.path(k, ".holders"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        if entries.is_empty() {
            None
        } else {
            Some(self.rng.pick(&entries).clone())
        }
    }

    fn act(&mut self) {
        let k = self.rng.below(self.stems.len() as u64) as usize;
        let n_actions = if self.unlink_held { 20 } else { 19 };
        match self.rng.below(n_actions) {
            0 => {
                if open_rw(&self.path(k, ".gate"))
                    .and_then(|f| f.set_len(0))
                    .is_ok()
                {
                    self.done("gate-truncate");
                }
            }
            1 => {
                let g = self.garbage(40);
                if open_rw(&self.path(k, ".gate"))
                    .and_then(|f| f.write_all_at(&g, 0))
                    .is_ok()
                {
                    self.done("gate-garbage");
                }
            }
            2 => {
                if fs::remove_file(self.path(k, ".gate")).is_ok() {
                    self.done("gate-delete");
                }
            }
            3 => {
                let gate = self.path(k, ".gate");
                let _ = fs::remove_file(&gate);
                if symlink(&self.victim, &gate).is_ok() {
                    let until = Instant::now() + Duration::from_millis(self.rng.range(5, 60));
                    self.pending.push((gate, until));
                    self.done("gate-symlink");
                }
            }
            4 => {
                if open_rw(&self.path(k, ".lock"))
                    .and_then(|f| f.set_len(0))
                    .is_ok()
                {
                    self.done("lock-truncate");
                }
            }
            5 => {
                let g = self.garbage(64);
                if open_rw(&self.path(k, ".lock"))
                    .and_then(|f| f.write_all_at(&g, 0))
                    .is_ok()
                {
                    self.done("lock-garbage");
                }
            }
            6 => self.delete_while_holding(k, false),
            7 => {
                if let Some(&p) = self
                    .plain
                    .get(self.rng.below(self.plain.len().max(1) as u64) as usize)
                {
                    self.delete_while_holding(p, true);
                }
            }
            8 | 9 => {
                let Some(&p) = self
                    .plain
                    .get(self.rng.below(self.plain.len().max(1) as u64) as usize)
                else {
                    return;
                };
                let info = self.path(p, ".info");
                let (bytes, what) = if self.rng.chance(50) {
                    (self.garbage(80), "info-garbage")
                } else {
                    // Plausible, naming this live process as a holder it is not.
                    let t = if self.rng.chance(50) {
                        "exclusive"
                    } else {
                        "shared"
                    };
                    let json = format!(
                        r#"{{"resource_id": "{}", "level": "scan", "lock_type": "{t}", "user": "operator", "timestamp": 1.5, "pid": {}, "thread_id": 7}}"#,
                        self.stems[p],
                        std::process::id()
                    );
                    (json.into_bytes(), "info-live")
                };
                if fs::write(&info, bytes).is_ok() {
                    let until = Instant::now() + Duration::from_millis(self.rng.range(0, 300));
                    self.pending.push((info, until));
                    self.done(what);
                }
            }
            10 => {
                if let Some(r) = self.random_record()
                    && fs::remove_file(r).is_ok()
                {
                    self.done("record-delete");
                }
            }
            11 => {
                if let Some(r) = self.random_record()
                    && open_rw(&r).and_then(|f| f.set_len(0)).is_ok()
                {
                    self.done("record-truncate");
                }
            }
            12 => {
                let g = self.garbage(300);
                if let Some(r) = self.random_record()
                    && open_rw(&r).and_then(|f| f.write_all_at(&g, 0)).is_ok()
                {
                    self.done("record-garbage");
                }
            }
            13 => self.forge(),
            14 => {
                self.seq += 1;
                let g = self.garbage(200);
                let p = self
                    .path(k, ".holders")
                    .join(format!("planted-{}.json", self.seq));
                if fs::write(p, g).is_ok() {
                    self.done("record-plant-garbage");
                }
            }
            15 => {
                self.seq += 1;
                let dir = self.path(k, ".holders");
                let link = dir.join(format!("evil-{}.json", self.seq));
                let fifo = dir.join(format!("fifo-{}.json", self.seq));
                let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid NUL-terminated path.
                let fifo_ok = unsafe { libc::mkfifo(c.as_ptr(), 0o644) } == 0;
                if symlink(&self.victim, link).is_ok() || fifo_ok {
                    self.done("record-plant-symlink-fifo");
                }
            }
            16 => {
                if fs::remove_dir_all(self.path(k, ".holders")).is_ok() {
                    self.done("holders-delete");
                }
            }
            17 => {
                // Symlinks under names of their own: cleanup sweeps every `*.holders`.
                self.seq += 1;
                let a = symlink(
                    &self.victim_dir,
                    self.lockdir.join(format!("evil{}.holders", self.seq)),
                );
                let b = symlink(
                    &self.victim,
                    self.lockdir.join(format!("evil{}.lock", self.seq)),
                );
                if a.is_ok() || b.is_ok() {
                    self.done("holders-symlink");
                }
            }
            18 => {
                // Hostile entries under names of their own (issue #16): FIFOs where a
                // lock and gate belong (an open without O_NONBLOCK would hang), and
                // file names that decode to no lock name (`%` is the empty name,
                // `%%00` a NUL), which every listing and cleanup must skip.
                self.seq += 1;
                let mut planted = false;
                for suffix in [".lock", ".gate"] {
                    let p = self.lockdir.join(format!("fifo{}{suffix}", self.seq));
                    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
                    // SAFETY: a valid NUL-terminated path.
                    planted |= unsafe { libc::mkfifo(c.as_ptr(), 0o644) } == 0;
                }
                for f in ["%.info", "%.lock", "%%00.lock", "%61.lock", "%.holders"] {
                    planted |= fs::write(self.lockdir.join(f), b"x").is_ok();
                }
                if planted {
                    self.done("plant-fifo-undecodable");
                }
            }
            _ => {
                if fs::remove_file(self.path(k, ".lock")).is_ok() {
                    self.done("unlink-held");
                }
            }
        }
    }

    /// Deletes `k`'s lock file while holding it. `plantdb`: the way plantdb releases
    /// (write `.info`; unlock; unlink `.lock`; unlink `.info`), which scanlock handles
    /// through the `.info`; otherwise unlink first, then unlock, which any waiter's
    /// identity check handles.
    fn delete_while_holding(&mut self, k: usize, plantdb: bool) {
        let path = self.path(k, ".lock");
        let Ok(f) = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            return;
        };
        let give_up = Instant::now() + Duration::from_millis(200);
        loop {
            match f.try_lock() {
                Ok(()) => break,
                Err(_) if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_micros(300))
                }
                Err(_) => return,
            }
        }
        // The file may have been replaced before we locked it: then we hold nothing.
        let same = fs::symlink_metadata(&path).is_ok_and(|m| {
            f.metadata()
                .is_ok_and(|n| m.ino() == n.ino() && m.dev() == n.dev())
        });
        if !same {
            return;
        }
        let start = now_ns();
        self.log.line(&format!("B {k} X {start} op"));
        let info = self.path(k, ".info");
        if plantdb {
            let json = format!(
                r#"{{"resource_id": "{}", "level": "scan", "lock_type": "exclusive", "user": "operator", "timestamp": 1.5, "pid": {}, "thread_id": 7}}"#,
                self.stems[k],
                std::process::id()
            );
            let _ = fs::write(&info, json);
        }
        if self.rng.chance(50) {
            std::thread::sleep(Duration::from_micros(self.rng.range(10, 2000)));
        }
        if plantdb {
            let end = now_ns();
            self.log.line(&format!("H {k} X {start} {end} op 0"));
            let _ = f.unlock();
            let _ = fs::remove_file(&path);
            let _ = fs::remove_file(&info);
            self.done("lock-delete-plantdb");
        } else {
            let _ = fs::remove_file(&path);
            let end = now_ns();
            self.log.line(&format!("H {k} X {start} {end} op 0"));
            let _ = f.unlock();
            self.done("lock-delete-held");
        }
    }

    /// Copies a real record under a new name with the user changed: a well-formed
    /// record that nobody holds, naming a live process. It must never be shown.
    fn forge(&mut self) {
        let Some(r) = self.random_record() else {
            return;
        };
        // Never block on a planted FIFO: open without waiting, read regular files only.
        let Ok(mut f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&r)
        else {
            return;
        };
        let mut text = String::new();
        if !f.metadata().is_ok_and(|m| m.is_file())
            || std::io::Read::read_to_string(&mut f, &mut text).is_err()
        {
            return;
        }
        let Some(i) = text.find("\"user\":\"") else {
            return;
        };
        let from = i + "\"user\":\"".len();
        let Some(len) = text[from..].find('"') else {
            return;
        };
        let mut forged = String::new();
        forged.push_str(&text[..from]);
        forged.push_str(FORGED_USER);
        forged.push_str(&text[from + len..]);
        self.seq += 1;
        let Some(dir) = r.parent() else { return };
        let p = dir.join(format!("forged-{}.json", self.seq));
        if File::create(&p)
            .and_then(|mut f| f.write_all(forged.as_bytes()))
            .is_ok()
        {
            self.done("record-forge");
        }
    }

    fn expire(&mut self, all: bool) {
        let now = Instant::now();
        // A removal can fail while the root is read-only: keep it for later then.
        self.pending.retain(|(p, until)| {
            (!all && *until > now)
                || fs::remove_file(p).is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound)
        });
    }
}

/// The operator process.
pub(crate) fn operator_main(cfg: &Config, dir: &Path) -> i32 {
    let stop = Stopper::new(dir, cfg);
    let names = lock_names(cfg.names);
    let stems: Vec<String> = names
        .iter()
        .map(|n| scanlock::__fuzz::stem(n).expect("valid name"))
        .collect();
    let plain = (0..names.len()).filter(|&k| stems[k] == names[k]).collect();
    let mut op = Operator {
        lockdir: dir.join("root").join(".locks"),
        victim: dir.join("victim"),
        victim_dir: dir.join("victimdir"),
        stems,
        plain,
        log: EventLog::open(&dir.join("logs").join("operator.log")).expect("log"),
        rng: Rng::new(cfg.seed ^ 0x0be7),
        pending: Vec::new(),
        seq: 0,
        unlink_held: cfg.faults.unlink_held,
    };
    while !stop.stopped() {
        std::thread::sleep(Duration::from_millis(op.rng.range(2, 30)));
        op.expire(false);
        op.act();
    }
    // The faults stop here: what was planted temporarily goes away; what was deleted,
    // truncated or garbled stays so, as an operator would leave it. The supervisor ends
    // any read-only window before it asks us to stop, so these removals go through.
    for _ in 0..100 {
        op.expire(true);
        if op.pending.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    0
}
