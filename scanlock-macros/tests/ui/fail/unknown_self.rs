// `{self.id}` in a function without a receiver.
#[scanlock::synchronized("{self.id}")]
fn process(scan_id: &str) -> std::io::Result<()> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
