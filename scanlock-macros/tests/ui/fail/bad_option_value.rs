#[scanlock::synchronized("{scan_id}", blocking = maybe, on_error = ignore)]
fn process(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
