//! No lint fires on the user's code: one-line bodies (which rustc's
//! `unused_braces` used to flag, and `cargo fix` then broke), a body that
//! starts with inner attributes, and `async fn`s, with every warning denied.
//! examples/lint_clean.rs is the same code under clippy.
#![deny(warnings)]

use std::time::Duration;

#[scanlock::synchronized("{f_name}-{scan_id}")]
fn sync_one_line(scan_id: &str) -> std::io::Result<usize> { Ok(scan_id.len()) }

#[scanlock::read_locked]
fn read_one_line(scan_id: &str) -> std::io::Result<()> { Ok(()) }

#[scanlock::write_locked(timeout = Duration::from_millis(10), on_error = panic)]
fn write_one_line(scan_id: &str) -> u32 { 7 }

#[scanlock::synchronized("{scan_id}", shared)]
fn sync_inner_attrs(scan_id: &str) -> std::io::Result<u32> {
    #![allow(unused_variables)]
    #![allow(clippy::needless_return)]
    let unused = 1;
    return Ok(2);
}

#[scanlock::read_locked("{scan_id}")]
fn read_inner_attrs(scan_id: &str) -> std::io::Result<()> {
    #![allow(unused_mut)]
    let mut v = Vec::<u8>::new();
    v.clear();
    Ok(())
}

#[scanlock::write_locked]
fn write_inner_attrs(scan_id: &str) -> std::io::Result<()> { #![allow(unused_variables)] let x = 1; Ok(()) }

#[scanlock::synchronized("{f_name}-{scan_id}")]
async fn sync_async(scan_id: &str) -> std::io::Result<usize> { Ok(scan_id.len()) }

#[scanlock::read_locked]
async fn read_async(scan_id: &str) -> std::io::Result<()> {
    #![allow(unused_variables)]
    let x = 1;
    Ok(())
}

#[scanlock::write_locked(blocking = false)]
async fn write_async(scan_id: &str) -> std::io::Result<()> { Ok(()) }

fn main() {
    // Not initialised: every call fails with NotInitialized, after type-checking.
    assert!(sync_one_line("a").is_err());
    assert!(read_one_line("a").is_err());
    let _ = write_one_line as fn(&str) -> u32;
    assert!(sync_inner_attrs("a").is_err());
    assert!(read_inner_attrs("a").is_err());
    assert!(write_inner_attrs("a").is_err());
    drop((sync_async("a"), read_async("a"), write_async("a")));
}
