//! `crate = <path>`: the attributes used through a renamed dependency
//! (`locks = { package = "scanlock", .. }` in this crate's Cargo.toml).

/// Exclusive, through the renamed crate.
#[locks::synchronized("{f_name}-{scan_id}", crate = locks)]
pub fn exclusive(scan_id: &str) -> Result<String, locks::LockError> {
    Ok(format!("held {scan_id}"))
}

/// Shared, through the renamed crate.
#[locks::read_locked(crate = ::locks, timeout = std::time::Duration::from_secs(5))]
pub fn shared(scan_id: &str) -> Result<usize, locks::LockError> {
    Ok(scan_id.len())
}

#[cfg(test)]
#[test]
fn renamed_dependency() {
    let dir = tempfile::tempdir().unwrap();
    locks::init_lock_root(dir.path()).unwrap();
    assert_eq!(exclusive("scan001").unwrap(), "held scan001");
    assert_eq!(shared("scan001").unwrap(), 7);
}
