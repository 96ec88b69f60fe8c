//! The built-in generator (being written).
