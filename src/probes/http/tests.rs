//! Unit tests of the parent module, kept beside it.
use super::*;

#[test]
fn body_search_finds_needles() {
    assert!(contains(b"hello world", b"o w"));
    assert!(!contains(b"hello", b"world"));
    assert!(contains(b"x", b""));
}
