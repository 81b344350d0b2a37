// Every mistake is reported in one compile.
#[scanlock::synchronized("{a}-{b}", bogus, shared, shared)]
fn process(scan_id: &str) -> u32 {
    scan_id.len() as u32
}

fn main() {
    // The function still exists, so its callers type-check.
    let _: u32 = process("x");
}
