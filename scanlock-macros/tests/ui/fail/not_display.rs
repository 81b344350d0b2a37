#[scanlock::synchronized("{f_name}-{data}")]
fn process(data: &[u8]) -> std::io::Result<()> {
    let _ = data;
    Ok(())
}

fn main() {}
