//! End-to-end tests of the HAC-NIC stack; the tests live in `tests/`.
