#[scanlock::synchronized("{scan_id}", timeout = std::time::Duration::from_secs(10), blocking = false)]
fn process(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
