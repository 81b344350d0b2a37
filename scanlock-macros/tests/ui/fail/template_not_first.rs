#[scanlock::synchronized(user = "me", "{scan_id}")]
fn process(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
