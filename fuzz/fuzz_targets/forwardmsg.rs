//! Fuzzes the ForwardMsg summarizer: arbitrary bytes, fed whole and in two
//! pieces split at a point chosen by the first byte, must never panic and
//! must summarize the same way.
#![no_main]

use idlegate::apps::streamlit::message::ForwardMsgScanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(first) % (rest.len() + 1);
    let (a, b) = rest.split_at(split);

    let mut whole = ForwardMsgScanner::new();
    let whole = whole.feed(rest).and_then(|()| whole.finish());

    let mut pieces = ForwardMsgScanner::new();
    let pieces = pieces
        .feed(a)
        .and_then(|()| pieces.feed(b))
        .and_then(|()| pieces.finish());

    assert_eq!(whole, pieces);
    if let Ok(summary) = whole {
        if let Some(id) = summary.session_id {
            assert!(id.len() <= 64);
        }
    }
});
