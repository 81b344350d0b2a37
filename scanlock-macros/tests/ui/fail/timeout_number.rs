#[scanlock::synchronized("{scan_id}", timeout = 10)]
fn process(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

#[scanlock::read_locked(timeout = 2.5)]
fn read(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
