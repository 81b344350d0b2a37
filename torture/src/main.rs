//! `scanlock-torture`: see the library docs and RELIABILITY.md.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(scanlock_torture::main_with_args(&args));
}
