//! Compile-fail tests: every error the attribute reports, as the user sees it.
//! Refresh the goldens with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
