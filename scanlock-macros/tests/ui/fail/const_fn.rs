#[scanlock::synchronized("{scan_id}")]
const fn process(scan_id: &str) -> Result<(), ()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
