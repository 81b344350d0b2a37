#[scanlock::synchronized("x")]
struct Scan;

fn main() {}
