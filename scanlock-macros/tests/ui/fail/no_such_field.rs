struct Scan {
    id: String,
}

#[scanlock::write_locked("{scan.name}")]
fn write_scan(scan: &Scan) -> std::io::Result<()> {
    let _ = &scan.id;
    Ok(())
}

fn main() {}
