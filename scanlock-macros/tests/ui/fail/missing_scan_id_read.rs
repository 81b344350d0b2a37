#[scanlock::read_locked]
fn read(id: &str, offset: u64) -> std::io::Result<()> {
    let _ = (id, offset);
    Ok(())
}

fn main() {}
