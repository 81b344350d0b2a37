#[scanlock::write_locked(blocking = false)]
fn write() -> std::io::Result<()> {
    Ok(())
}

fn main() {}
