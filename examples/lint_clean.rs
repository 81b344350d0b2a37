//! The locking attributes leave no lint behind, under rustc and clippy
//! (CI runs `cargo clippy --all-targets -- -D warnings`): one-line bodies, a body
//! starting with inner attributes, and `async fn`s. The same code is the
//! scanlock-macros UI pass case `lint_clean.rs`.
#![deny(warnings)]

use std::time::Duration;

#[rustfmt::skip] // a one-line body is the case being checked
#[scanlock::synchronized("{f_name}-{scan_id}")]
fn sync_one_line(scan_id: &str) -> std::io::Result<usize> { Ok(scan_id.len()) }

#[rustfmt::skip]
#[scanlock::read_locked]
fn read_one_line(scan_id: &str) -> std::io::Result<()> { Ok(()) }

#[rustfmt::skip]
#[scanlock::write_locked(timeout = Duration::from_millis(10), on_error = panic)]
fn write_one_line(scan_id: &str) -> u32 { 7 }

#[scanlock::synchronized("{scan_id}", shared)]
fn sync_inner_attrs(scan_id: &str) -> std::io::Result<u32> {
    #![allow(unused_variables)]
    let unused = 1;
    Ok(2)
}

#[rustfmt::skip]
#[scanlock::synchronized("{f_name}-{scan_id}")]
async fn sync_async(scan_id: &str) -> std::io::Result<usize> { Ok(scan_id.len()) }

#[scanlock::read_locked]
async fn read_async(scan_id: &str) -> std::io::Result<()> {
    #![allow(unused_variables)]
    let x = 1;
    Ok(())
}

fn main() {
    let dir = std::env::temp_dir().join(format!("scanlock-lint-clean-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    scanlock::init_lock_root(&dir).expect("lock root");
    assert_eq!(sync_one_line("a").expect("locked"), 1);
    read_one_line("a").expect("locked");
    assert_eq!(write_one_line("a"), 7);
    assert_eq!(sync_inner_attrs("a").expect("locked"), 2);
    drop((sync_async("a"), read_async("a")));
    let _ = std::fs::remove_dir_all(&dir);
}
