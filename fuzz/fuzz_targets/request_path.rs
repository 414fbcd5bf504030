//! Fuzzes the request path normaliser: any bytes as a path must never panic, and an accepted
//! path's canonical form is absolute, clean (no `.`/`..`/empty segments, only printable
//! ASCII), its own canonical form, and routes like the raw path once decoded.
#![no_main]

use idlegate::paths::{canonical, decoded};
use libfuzzer_sys::fuzz_target;

/// The segments a server routes for a path: decoded once, dot and empty segments resolved.
fn routed(decoded_path: &[u8]) -> Vec<Vec<u8>> {
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for segment in decoded_path.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            other => segments.push(other.to_vec()),
        }
    }
    segments
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = canonical(raw) else {
        assert!(!raw.starts_with('/'));
        return;
    };
    assert!(once.starts_with('/'));
    assert!(once.bytes().all(|b| b.is_ascii_graphic()));
    assert!(!once.contains("//"));
    assert!(once.split('/').all(|s| s != "." && s != ".."));
    assert_eq!(canonical(&once).ok().as_deref(), Some(&*once));
    assert_eq!(routed(&decoded(&once)), routed(&decoded(raw)));
});
