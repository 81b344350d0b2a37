//! Thin entry points into crate-private parsers, for the fuzz targets (`fuzz/`) and the
//! reliability harness (`torture/`). Not part of the API: no stability promise.

use crate::{LockError, LockInfo, LockType};

/// A plantdb `.info` record as scanlock reads it: `(pid, lock_type, user)`, or `None`
/// for anything it does not take as a record.
pub fn parse_plantdb_info(bytes: &[u8]) -> Option<(u32, LockType, String)> {
    crate::info::PlantdbInfo::parse(bytes).map(|p| (p.pid, p.lock_type, p.user))
}

/// The holder in a holder record's bytes, if they are a complete active record.
pub fn decode_record(bytes: &[u8]) -> Option<LockInfo> {
    crate::backend::file::decode_record(bytes)
}

/// The file stem of a lock name under `.locks/` (`<stem>.lock`, `<stem>.gate`, ...).
pub fn stem(name: &str) -> Result<String, LockError> {
    crate::name::LockName::new(name).map(|n| n.stem().to_owned())
}
