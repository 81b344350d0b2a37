#[scanlock::synchronized("{f_name}-{scan_id}")]
fn count(scan_id: &str) -> usize {
    scan_id.len()
}

fn main() {}
