//! The diagnostics of `#[synchronized]`, `#[read_locked]` and `#[write_locked]`.
//!
//! Every `ui/fail/*.rs` is one mistake a user can make; the `.stderr` beside it
//! is the exact message they get (regenerate with `TRYBUILD=overwrite`, then
//! read the diff). `ui/pass/*.rs` must compile without a warning.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
