// The error type cannot be built from a `scanlock::LockError`.
#[derive(Debug)]
struct MyError;

#[scanlock::synchronized("{scan_id}")]
fn process(scan_id: &str) -> Result<(), MyError> {
    let _ = scan_id;
    Ok(())
}

fn main() {}
