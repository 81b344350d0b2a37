#[scanlock::read_locked("{scan_id}", tiemout = std::time::Duration::from_secs(1))]
fn read(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
