#[scanlock::write_locked]
fn touch(scan_id: &str) {
    let _ = scan_id;
}

fn main() {}
