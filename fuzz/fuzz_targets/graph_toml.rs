//! Fuzz target: any UTF-8 text as a graph file. A graph loads, validates, round-trips
//! through TOML and (for a small generator) plans; or the error names the file.
//! Invariants: `tests/support/parser_checks.rs`.
#![no_main]

#[path = "../../tests/support/parser_checks.rs"]
#[allow(dead_code)]
mod parser_checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        parser_checks::check_graph(text);
    }
});
