//! Fuzz target: any bytes as a JSON-lines file of one stream (the first byte picks the
//! stream, the second the poll size), read through the file partition exactly as a file
//! is, and each UTF-8 line also through `parse_json` directly.
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
        parser_checks::check_file(Format::Json, stream, bytes, usize::from(*chunk % 8) + 1);
        if let Ok(text) = std::str::from_utf8(bytes) {
            for line in text.lines() {
                parser_checks::check_json_line(stream, line);
            }
        }
    }
});
