#[scanlock::synchronized("{f_name}-{scan}")]
fn process(scan_id: &str, data: &[u8]) -> std::io::Result<usize> {
    let _ = scan_id;
    Ok(data.len())
}

fn main() {}
