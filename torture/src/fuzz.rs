//! Fuzz targets, shared by cargo-fuzz (`fuzz/fuzz_targets/`, nightly) and the bounded
//! random loops of `torture/tests/fuzz_stable.rs` (stable), with their seeds and a
//! small mutator for the latter.
//!
//! Each target panics on a property violation; garbage must be rejected, never trusted.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use scanlock::{LockType, ScanLockManager};

use crate::rng::Rng;

// The lock-name template parser of scanlock-macros. A proc-macro crate can export
// nothing but macros, so the parser (a pure module over `&str`, std only) is compiled
// here a second time, from the same file.
#[allow(dead_code, unreachable_pub)]
#[path = "../../scanlock-macros/src/template.rs"]
mod template;

use template::{Segment, Template};

/// A template's structure without byte ranges, for comparisons.
fn shape(t: &Template) -> Vec<String> {
    t.segments
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => format!("L{l}"),
            Segment::Placeholder(p) => format!("P{p}"),
        })
        .collect()
}

/// Template parser: never panics; every error's range slices the input; an accepted
/// template renders back to one that parses to the same structure and renders the same.
pub fn template_target(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match Template::parse(src) {
        Ok(t) => {
            for p in t.placeholders() {
                assert!(src.get(p.range.clone()).is_some(), "{src:?}: {p:?}");
            }
            let _ = t.check(&["a".into(), "self".into(), "f_name".into()]);
            let rendered = t.to_string();
            let again = Template::parse(&rendered)
                .unwrap_or_else(|e| panic!("{src:?} rendered to {rendered:?}: {e:?}"));
            assert_eq!(shape(&t), shape(&again), "{src:?} -> {rendered:?}");
            assert_eq!(again.to_string(), rendered, "{src:?}");
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "{src:?}");
            for e in &errors {
                assert!(src.get(e.range.clone()).is_some(), "{src:?}: {e:?}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// plantdb `.info` reader: never panics; accepts only objects with a pid and a lock
/// type (what it returns is then only a claim, checked against the kernel by scanlock).
pub fn plantdb_info_target(data: &[u8]) {
    if let Some((_pid, _mode, _user)) = scanlock::__fuzz::parse_plantdb_info(data) {
        let text = String::from_utf8_lossy(data);
        assert!(
            text.contains("pid") && text.contains("lock_type"),
            "accepted {text:?}"
        );
    }
}

/// Holder-record decoder: never panics; accepts only a complete, active envelope.
pub fn holder_record_target(data: &[u8]) {
    if let Some(h) = scanlock::__fuzz::decode_record(data) {
        assert_ne!(data.first(), Some(&b'#'), "an inactive record was decoded");
        let text = String::from_utf8_lossy(data);
        assert!(text.contains("holder") && text.contains("seq") && text.contains("end"));
        let _ = h.user.len();
    }
}

/// The readers on real files: `data` is written as a holder record (unlocked, then
/// locked by this process as a live holder would) and as a plantdb `.info`; status and
/// stale listing must not fail or panic, and an unlocked record is never a holder.
#[derive(Debug)]
pub struct FileTarget {
    dir: PathBuf,
    manager: ScanLockManager,
}

impl FileTarget {
    /// A lock root under `dir` (created).
    pub fn new(dir: &Path) -> FileTarget {
        let manager = ScanLockManager::builder(dir)
            .cleanup_on_start(false)
            .build()
            .expect("manager");
        let holders = manager.lock_dir().join("scan001.holders");
        fs::create_dir_all(&holders).expect("holders dir");
        FileTarget {
            dir: dir.to_path_buf(),
            manager,
        }
    }

    /// Runs one input.
    pub fn run(&self, data: &[u8]) {
        let locks = self.manager.lock_dir();
        let record = locks.join("scan001.holders").join("fuzz-1-1.json");
        File::create(&record)
            .and_then(|mut f| f.write_all(data))
            .expect("write record");
        fs::write(locks.join("scan001.info"), data).expect("write info");
        let st = self.manager.get_lock_status("scan001").expect("status");
        assert!(
            st.holders.is_empty(),
            "trusted an unlocked record or an .info nobody holds: {st:?}"
        );
        assert_eq!(st.lock_type, None);
        // At most the record and the `.info` (a plantdb `.info` naming no live holder is
        // stale too), and never anything else.
        let stale = self.manager.find_stale_records().expect("stale listing");
        let info = locks.join("scan001.info");
        assert!(
            stale.len() <= 2
                && stale.iter().all(|s| {
                    let p = Path::new(&s.location);
                    p == record || p == info
                }),
            "{stale:?}"
        );
        // Now as if a live process held the record: shown only if it decodes.
        let f = File::open(&record).expect("open record");
        f.lock_shared().expect("lock record");
        let st = self.manager.get_lock_status("scan001").expect("status");
        let decodes = scanlock::__fuzz::decode_record(data).is_some();
        assert!(
            st.holders.len() <= usize::from(decodes),
            "showed a record that does not decode: {st:?}"
        );
        drop(f);
        fs::remove_file(&record).expect("remove record");
    }

    /// The root it works in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A holder that really holds: the kernel and the record agree.
    pub fn sanity(&self) {
        let g = self
            .manager
            .acquire_lock("scan001", LockType::Shared, "fuzz", None)
            .expect("acquire");
        let st = self.manager.get_lock_status("scan001").expect("status");
        assert_eq!(st.holders.len(), 1, "{st:?}");
        drop(g);
    }
}

/// Seed inputs of the template target.
pub fn template_seeds() -> Vec<Vec<u8>> {
    [
        "lock-{f_name}-{foo.val}-{bar[val]}",
        "{self.id}{v[0]}{pair.0}{a.b[c d].e[12]}",
        "{{literal}}",
        "a{{{b}}}c",
        "é-{名前}-ü{x.ñ}",
        "{m[a:b!c]}",
        "{a:>8}{a!r}{0}{}",
        "{a[99999999999999999999999]}",
        "{",
        "}",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Tokens the mutator inserts into templates.
pub const TEMPLATE_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b".",
    b":",
    b"!",
    b"{{",
    b"}}",
    b"f_name",
    b"self",
    b"0",
    b"_",
    b" ",
    "é".as_bytes(),
    "🦀".as_bytes(),
];

/// Seed inputs of the `.info` target.
pub fn info_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"resource_id": "scan001", "level": "scan", "lock_type": "exclusive", "user": "tester", "timestamp": 1795426635.2117302, "pid": 2844, "thread_id": 140570059979648}"#,
        r#"{"scan_id": "scan001", "lock_type": "shared", "user": 7, "timestamp": "x", "pid": "12", "thread_id": 1}"#,
        r#"{"pid": -1, "lock_type": "shared"}"#,
        "[]",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Tokens the mutator inserts into `.info` and record inputs.
pub const JSON_DICT: &[&[u8]] = &[
    b"\"pid\"",
    b"\"lock_type\"",
    b"\"exclusive\"",
    b"\"LOCK_EX\"",
    b"\"seq\"",
    b"\"end\"",
    b"\"holder\"",
    b":",
    b",",
    b"{",
    b"}",
    b"-1",
    b"4294967296",
    b"1e400",
    b"null",
    b"\"\\u0000\"",
    b"#",
];

/// A well-formed active holder record (the format of scanlock's `.holders/` files).
pub const RECORD_SAMPLE: &str = r#"{"seq":3,"holder":{"name":"scan001","user":"web-ui","pid":4242,"hostname":"host","thread":"main","thread_id":4243,"lock_type":"shared","acquired_at":{"secs_since_epoch":1763900000,"nanos_since_epoch":5},"boot_id":"b"},"end":3}"#;

/// Seed inputs of the record targets.
pub fn record_seeds() -> Vec<Vec<u8>> {
    let padded = format!("{RECORD_SAMPLE}{}", " ".repeat(40));
    let inactive = format!("#{}", &RECORD_SAMPLE[1..]);
    let torn = RECORD_SAMPLE.replace("\"end\":3", "\"end\":2");
    [
        RECORD_SAMPLE.to_owned(),
        padded,
        inactive,
        torn,
        String::new(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// One random mutation of `input` (bit flips, byte edits, dictionary tokens, splices
/// with `other`, truncation), as a stand-in for libFuzzer's on stable Rust.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], dict: &[&[u8]]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.range(1, 4) {
        let len = v.len() as u64;
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len) as usize;
                v[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len + 1) as usize;
                v.insert(i, rng.next_u64() as u8);
            }
            3 if len > 0 => {
                let a = rng.below(len) as usize;
                let b = (a + rng.range(1, 8) as usize).min(v.len());
                v.drain(a..b);
            }
            4 | 5 => {
                let i = rng.below(len + 1) as usize;
                let tok = rng.pick(dict);
                v.splice(i..i, tok.iter().copied());
            }
            6 if !other.is_empty() => {
                let a = rng.below(other.len() as u64) as usize;
                let b = a + rng.below((other.len() - a) as u64 + 1) as usize;
                let i = rng.below(len + 1) as usize;
                v.splice(i..i, other[a..b].iter().copied());
            }
            _ if len > 0 => v.truncate(rng.below(len) as usize),
            _ => {}
        }
    }
    v.truncate(4096);
    v
}
