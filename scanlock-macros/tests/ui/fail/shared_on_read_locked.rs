#[scanlock::read_locked("{scan_id}", shared)]
fn read(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
