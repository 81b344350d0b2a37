#[scanlock::synchronized("{scan.}-{scan_id:>8}-{0}")]
fn process(scan_id: &str, scan: &str) -> std::io::Result<()> {
    let _ = (scan_id, scan);
    Ok(())
}

fn main() {}
