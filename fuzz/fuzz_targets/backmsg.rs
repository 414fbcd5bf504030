//! Fuzzes the BackMsg classifier: arbitrary bytes, fed whole and in two
//! pieces split at a point chosen by the first byte, must never panic and
//! must classify the same way.
#![no_main]

use idlegate::apps::streamlit::message::BackMsgScanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(first) % (rest.len() + 1);
    let (a, b) = rest.split_at(split);

    let mut whole = BackMsgScanner::new();
    let whole = whole.feed(rest).and_then(|()| whole.finish());

    let mut pieces = BackMsgScanner::new();
    let pieces = pieces
        .feed(a)
        .and_then(|()| pieces.feed(b))
        .and_then(|()| pieces.finish());

    assert_eq!(whole.is_ok(), pieces.is_ok());
    if let (Ok(x), Ok(y)) = (whole, pieces) {
        assert_eq!(x, y);
    }
});
