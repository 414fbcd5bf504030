//! Fuzzes the WebSocket frame reader in both roles. The first input byte
//! picks where the rest is split, so header and payload boundaries land in
//! every position; the split and unsplit runs must agree.
#![no_main]

use idlegate::ws::{FrameEvent, FrameReader, Role};
use libfuzzer_sys::fuzz_target;

fn run(role: Role, chunks: &[&[u8]]) -> (bool, usize, bool) {
    let mut reader = FrameReader::new(role, 1 << 16);
    let mut payload = 0usize;
    let mut ok = true;
    for chunk in chunks {
        let fed = reader.feed(chunk, &mut |event| {
            if let FrameEvent::Payload(p) = event {
                assert!(!p.is_empty());
                payload += p.len();
            }
        });
        if fed.is_err() {
            ok = false;
            break;
        }
    }
    (ok, payload, ok && reader.at_boundary())
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(first) % (rest.len() + 1);
    let (a, b) = rest.split_at(split);
    for role in [Role::FromClient, Role::FromServer] {
        let whole = run(role, &[rest]);
        let split = run(role, &[a, b]);
        assert_eq!(whole.0, split.0);
        if whole.0 {
            assert_eq!(whole, split);
        }
    }
});
