#[scanlock::write_locked("{scan_id}", user = "a", user = "b")]
fn write(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
