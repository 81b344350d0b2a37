const WAIT_SECS: u64 = 10;

#[scanlock::synchronized("{scan_id}", timeout = WAIT_SECS)]
fn process(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

#[scanlock::write_locked(timeout = Some(std::time::Duration::from_secs(1)))]
async fn write(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
