//! `crate = path`: the expansion reaches scanlock only through the given path,
//! here a facade module that re-exports it (the way a facade crate would).
//! A renamed dependency (`locks = { package = "scanlock" }`) is tested in
//! tests/renamed-dep.
#![deny(warnings)]

mod facade {
    pub mod locks {
        pub use scanlock::*;
    }
}

#[scanlock::synchronized("{scan_id}", crate = facade::locks)]
fn sync(scan_id: &str) -> std::io::Result<()> { Ok(()) }

#[scanlock::read_locked(crate = crate::facade::locks, on_error = panic)]
fn read(scan_id: &str) {}

#[scanlock::write_locked(crate = self::facade::locks, timeout = std::time::Duration::ZERO)]
async fn write(scan_id: &str) -> std::io::Result<()> { Ok(()) }

fn main() {
    assert!(sync("a").is_err());
    let _ = read as fn(&str);
    drop(write("a"));
}
