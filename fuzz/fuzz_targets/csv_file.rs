//! Fuzz target: any bytes as a CSV file of one stream (the first byte picks the stream,
//! the second the poll size), read through the file partition exactly as a file is.
//! Invariants: `tests/support/parser_checks.rs`.
#![no_main]

#[path = "../../tests/support/parser_checks.rs"]
#[allow(dead_code)]
mod parser_checks;

use diffmill::format::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let [stream, chunk, bytes @ ..] = data {
        let stream = parser_checks::stream_of(*stream);
        parser_checks::check_file(Format::Csv, stream, bytes, usize::from(*chunk % 8) + 1);
    }
});
