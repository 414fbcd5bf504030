use super::*;
use proptest::prelude::*;
use tokio_tungstenite::tungstenite::protocol::frame::{
    coding::{Control, Data, OpCode},
    Frame, FrameHeader as TFrameHeader,
};
use tokio_tungstenite::tungstenite::Bytes;

const MAX: u64 = 1 << 20;
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Owned copy of a [`FrameEvent`], with consecutive payload pieces merged so
/// results do not depend on chunking.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Header(FrameHeader),
    Payload(Vec<u8>),
    End(FrameHeader),
}

fn push_event(events: &mut Vec<Ev>, event: FrameEvent<'_>) {
    match event {
        FrameEvent::Header(h) => events.push(Ev::Header(h)),
        FrameEvent::End(h) => events.push(Ev::End(h)),
        FrameEvent::Payload(p) => {
            assert!(!p.is_empty(), "payload events are never empty");
            if let Some(Ev::Payload(prev)) = events.last_mut() {
                prev.extend_from_slice(p);
            } else {
                events.push(Ev::Payload(p.to_vec()));
            }
        }
    }
}

/// Feeds `bytes` in chunks of the given sizes (cycled), collecting events.
fn feed_chunked(
    reader: &mut FrameReader,
    bytes: &[u8],
    sizes: &[usize],
) -> Result<Vec<Ev>, FrameError> {
    let mut events = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(usize::MAX);
        let (chunk, tail) = rest.split_at(n.clamp(1, rest.len()));
        reader.feed(chunk, &mut |e| push_event(&mut events, e))?;
        rest = tail;
        i += 1;
    }
    Ok(events)
}

fn read_all(role: Role, bytes: &[u8]) -> Result<Vec<Ev>, FrameError> {
    feed_chunked(&mut FrameReader::new(role, MAX), bytes, &[usize::MAX])
}

fn header(opcode: Opcode, fin: bool, mask: Option<[u8; 4]>, len: u64) -> FrameHeader {
    FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask,
        payload_len: len,
    }
}

fn frame_events(h: FrameHeader, payload: &[u8]) -> Vec<Ev> {
    let mut v = vec![Ev::Header(h)];
    if !payload.is_empty() {
        v.push(Ev::Payload(payload.to_vec()));
    }
    v.push(Ev::End(h));
    v
}

fn encoded(opcode: Opcode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, opcode, fin, payload, mask);
    out
}

fn role_mask(role: Role) -> Option<[u8; 4]> {
    match role {
        Role::FromClient => Some(KEY),
        Role::FromServer => None,
    }
}

// --- RFC 6455 §5.7 examples -------------------------------------------------

#[test]
fn rfc_unmasked_text_from_server_is_read() {
    let bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let h = header(Opcode::Text, true, None, 5);
    assert_eq!(
        read_all(Role::FromServer, &bytes),
        Ok(frame_events(h, b"Hello"))
    );
}

#[test]
fn rfc_masked_text_from_client_is_unmasked() {
    let bytes = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let h = header(Opcode::Text, true, Some(KEY), 5);
    assert_eq!(
        read_all(Role::FromClient, &bytes),
        Ok(frame_events(h, b"Hello"))
    );
    assert_eq!(encoded(Opcode::Text, true, b"Hello", Some(KEY)), bytes);
}

#[test]
fn rfc_fragmented_text_is_read_as_two_frames() {
    let bytes = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    let mut expected = frame_events(header(Opcode::Text, false, None, 3), b"Hel");
    expected.extend(frame_events(
        header(Opcode::Continuation, true, None, 2),
        b"lo",
    ));
    assert_eq!(read_all(Role::FromServer, &bytes), Ok(expected));
}

#[test]
fn rfc_ping_and_masked_pong_are_read() {
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let h = header(Opcode::Ping, true, None, 5);
    assert_eq!(
        read_all(Role::FromServer, &ping),
        Ok(frame_events(h, b"Hello"))
    );
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let h = header(Opcode::Pong, true, Some(KEY), 5);
    assert_eq!(
        read_all(Role::FromClient, &pong),
        Ok(frame_events(h, b"Hello"))
    );
}

#[test]
fn rfc_16_and_64_bit_lengths_are_read() {
    let mut bytes = vec![0x82, 0x7e, 0x01, 0x00];
    bytes.extend(std::iter::repeat_n(7u8, 256));
    let h = header(Opcode::Binary, true, None, 256);
    assert_eq!(
        read_all(Role::FromServer, &bytes),
        Ok(frame_events(h, &[7; 256]))
    );

    let mut bytes = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    bytes.extend(std::iter::repeat_n(9u8, 65536));
    let h = header(Opcode::Binary, true, None, 65536);
    assert_eq!(
        read_all(Role::FromServer, &bytes),
        Ok(frame_events(h, &[9; 65536]))
    );
}

// --- lengths and masking ----------------------------------------------------

#[test]
fn boundary_payload_lengths_round_trip_in_both_roles() {
    for role in [Role::FromClient, Role::FromServer] {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let bytes = encoded(Opcode::Binary, true, &payload, role_mask(role));
            let mask_len = if role == Role::FromClient { 4 } else { 0 };
            assert_eq!(bytes.len(), header_len + mask_len + len, "len {len}");
            let h = header(Opcode::Binary, true, role_mask(role), len as u64);
            for sizes in [&[usize::MAX][..], &[1], &[3, 4096, 7]] {
                let mut reader = FrameReader::new(role, MAX);
                let events = feed_chunked(&mut reader, &bytes, sizes);
                assert_eq!(events, Ok(frame_events(h, &payload)), "len {len} {role:?}");
                assert!(reader.at_boundary());
            }
        }
    }
}

#[test]
fn zero_length_frame_emits_header_then_end_in_same_feed() {
    let bytes = encoded(Opcode::Ping, true, b"", None);
    let mut reader = FrameReader::new(Role::FromServer, MAX);
    let mut events = Vec::new();
    reader
        .feed(&bytes, &mut |e| push_event(&mut events, e))
        .unwrap();
    let h = header(Opcode::Ping, true, None, 0);
    assert_eq!(events, vec![Ev::Header(h), Ev::End(h)]);
    assert!(reader.at_boundary());
}

#[test]
fn mask_offset_is_tracked_across_odd_chunk_boundaries() {
    let payload: Vec<u8> = (0..=255u8).collect();
    let bytes = encoded(Opcode::Binary, true, &payload, Some([1, 2, 3, 4]));
    for split in [1, 2, 3, 5, 7, 9, 13] {
        let mut reader = FrameReader::new(Role::FromClient, MAX);
        let events = feed_chunked(&mut reader, &bytes, &[split]).unwrap();
        let h = header(Opcode::Binary, true, Some([1, 2, 3, 4]), 256);
        assert_eq!(events, frame_events(h, &payload), "split {split}");
    }
}

#[test]
fn large_masked_payload_is_delivered_in_bounded_pieces() {
    let payload = vec![0xAB; 3 * SCRATCH_LEN + 17];
    let bytes = encoded(Opcode::Binary, true, &payload, Some(KEY));
    let mut reader = FrameReader::new(Role::FromClient, MAX);
    let mut largest = 0;
    let mut total = 0;
    reader
        .feed(&bytes, &mut |e| {
            if let FrameEvent::Payload(p) = e {
                assert!(p.iter().all(|&b| b == 0xAB));
                largest = largest.max(p.len());
                total += p.len();
            }
        })
        .unwrap();
    assert_eq!(largest, SCRATCH_LEN);
    assert_eq!(total, payload.len());
}

#[test]
fn server_payload_is_passed_through_without_copying_pieces() {
    let payload = vec![5; 3 * SCRATCH_LEN];
    let bytes = encoded(Opcode::Binary, true, &payload, None);
    let mut reader = FrameReader::new(Role::FromServer, MAX);
    let mut pieces = 0;
    reader
        .feed(&bytes, &mut |e| {
            if let FrameEvent::Payload(_) = e {
                pieces += 1;
            }
        })
        .unwrap();
    assert_eq!(pieces, 1);
}

#[test]
fn rsv_bits_are_reported_not_rejected() {
    let bytes = [0xC1, 0x01, b'x']; // FIN + RSV1, text
    let events = read_all(Role::FromServer, &bytes).unwrap();
    let Ev::Header(h) = events[0] else {
        panic!("expected header")
    };
    assert_eq!(h.rsv, 0b100);
}

#[test]
fn non_minimal_length_encoding_is_accepted() {
    let bytes = [0x82, 0x7e, 0x00, 0x02, 1, 2];
    let h = header(Opcode::Binary, true, None, 2);
    assert_eq!(
        read_all(Role::FromServer, &bytes),
        Ok(frame_events(h, &[1, 2]))
    );
}

// --- state queries ----------------------------------------------------------

#[test]
fn boundary_and_remaining_payload_follow_the_stream_byte_by_byte() {
    let bytes = encoded(Opcode::Binary, true, &[1, 2, 3], Some(KEY));
    let mut reader = FrameReader::new(Role::FromClient, MAX);
    assert!(reader.at_boundary());
    assert_eq!(reader.remaining_payload(), None);
    let mut seen = Vec::new();
    for b in &bytes {
        reader.feed(std::slice::from_ref(b), &mut |_| {}).unwrap();
        seen.push((reader.at_boundary(), reader.remaining_payload()));
    }
    assert_eq!(
        seen,
        vec![
            (false, None),
            (false, None),
            (false, None),
            (false, None),
            (false, None),
            (false, Some(3)),
            (false, Some(2)),
            (false, Some(1)),
            (true, None),
        ]
    );
}

#[test]
fn empty_feed_changes_nothing() {
    let mut reader = FrameReader::new(Role::FromServer, MAX);
    reader.feed(&[0x82], &mut |_| {}).unwrap();
    reader.feed(&[], &mut |_| panic!("no event")).unwrap();
    assert!(!reader.at_boundary());
}

#[test]
fn fragmented_message_with_interleaved_ping_is_tracked() {
    let mut bytes = encoded(Opcode::Binary, false, b"ab", None);
    bytes.extend(encoded(Opcode::Ping, true, b"p", None));
    bytes.extend(encoded(Opcode::Continuation, false, b"cd", None));
    bytes.extend(encoded(Opcode::Pong, true, b"", None));
    bytes.extend(encoded(Opcode::Continuation, true, b"ef", None));
    bytes.extend(encoded(Opcode::Text, true, b"g", None));

    let mut reader = FrameReader::new(Role::FromServer, MAX);
    let mut events = Vec::new();
    let mut fragmented_at_end = Vec::new();
    for b in &bytes {
        reader
            .feed(std::slice::from_ref(b), &mut |e| {
                if let FrameEvent::End(h) = e {
                    fragmented_at_end.push(h.opcode);
                }
                push_event(&mut events, e)
            })
            .unwrap();
        if reader.at_boundary() {
            fragmented_at_end.push(if reader.in_fragmented_message() {
                Opcode::Continuation
            } else {
                Opcode::Close // marker: not fragmented
            });
        }
    }
    let mut expected = frame_events(header(Opcode::Binary, false, None, 2), b"ab");
    expected.extend(frame_events(header(Opcode::Ping, true, None, 1), b"p"));
    expected.extend(frame_events(
        header(Opcode::Continuation, false, None, 2),
        b"cd",
    ));
    expected.extend(frame_events(header(Opcode::Pong, true, None, 0), b""));
    expected.extend(frame_events(
        header(Opcode::Continuation, true, None, 2),
        b"ef",
    ));
    expected.extend(frame_events(header(Opcode::Text, true, None, 1), b"g"));
    assert_eq!(events, expected);
    // After each frame: still fragmented until the final continuation ends.
    let in_progress: Vec<bool> = fragmented_at_end
        .chunks(2)
        .map(|pair| pair[1] == Opcode::Continuation)
        .collect();
    assert_eq!(in_progress, vec![true, true, true, true, false, false]);
}

#[test]
fn in_fragmented_message_stays_true_during_final_continuation_payload() {
    let mut bytes = encoded(Opcode::Text, false, b"a", None);
    bytes.extend(encoded(Opcode::Continuation, true, b"bc", None));
    let mut reader = FrameReader::new(Role::FromServer, MAX);
    reader.feed(&bytes[..bytes.len() - 1], &mut |_| {}).unwrap();
    assert!(reader.in_fragmented_message());
    assert_eq!(reader.remaining_payload(), Some(1));
    reader.feed(&bytes[bytes.len() - 1..], &mut |_| {}).unwrap();
    assert!(!reader.in_fragmented_message());
}

// --- errors -----------------------------------------------------------------

fn first_error(role: Role, bytes: &[u8]) -> FrameError {
    read_all(role, bytes).expect_err("must be rejected")
}

#[test]
fn reserved_opcodes_are_rejected() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(
            first_error(Role::FromServer, &[0x80 | op, 0x00]),
            FrameError::ReservedOpcode(op)
        );
    }
}

#[test]
fn control_frame_over_125_bytes_is_rejected() {
    let bytes = encoded(Opcode::Ping, true, &[0; 126], None);
    assert_eq!(
        first_error(Role::FromServer, &bytes),
        FrameError::ControlFrameTooLong {
            opcode: Opcode::Ping,
            len: 126
        }
    );
}

#[test]
fn fragmented_control_frame_is_rejected() {
    assert_eq!(
        first_error(Role::FromServer, &[0x08, 0x00]),
        FrameError::FragmentedControlFrame(Opcode::Close)
    );
}

#[test]
fn length_with_top_bit_set_is_rejected() {
    let bytes = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(
        first_error(Role::FromServer, &bytes),
        FrameError::LengthTopBitSet
    );
}

#[test]
fn payload_over_configured_max_is_rejected() {
    let mut reader = FrameReader::new(Role::FromServer, 10);
    let bytes = encoded(Opcode::Binary, true, &[0; 11], None);
    assert_eq!(
        reader.feed(&bytes, &mut |_| {}),
        Err(FrameError::PayloadTooLarge { len: 11, max: 10 })
    );
    let mut reader = FrameReader::new(Role::FromServer, 10);
    let bytes = encoded(Opcode::Binary, true, &[0; 10], None);
    assert_eq!(reader.feed(&bytes, &mut |_| {}), Ok(()));
}

#[test]
fn unmasked_client_frame_is_rejected() {
    let bytes = encoded(Opcode::Text, true, b"x", None);
    assert_eq!(
        first_error(Role::FromClient, &bytes),
        FrameError::WrongMasking {
            role: Role::FromClient,
            masked: false
        }
    );
}

#[test]
fn masked_server_frame_is_rejected() {
    let bytes = encoded(Opcode::Text, true, b"x", Some(KEY));
    assert_eq!(
        first_error(Role::FromServer, &bytes),
        FrameError::WrongMasking {
            role: Role::FromServer,
            masked: true
        }
    );
}

#[test]
fn continuation_without_message_is_rejected() {
    let bytes = encoded(Opcode::Continuation, true, b"x", None);
    assert_eq!(
        first_error(Role::FromServer, &bytes),
        FrameError::UnexpectedContinuation
    );
}

#[test]
fn new_data_frame_during_fragmented_message_is_rejected() {
    let mut bytes = encoded(Opcode::Text, false, b"a", None);
    bytes.extend(encoded(Opcode::Binary, true, b"b", None));
    assert_eq!(
        first_error(Role::FromServer, &bytes),
        FrameError::ExpectedContinuation(Opcode::Binary)
    );
}

#[test]
fn errors_are_detected_when_header_arrives_byte_by_byte() {
    let bytes = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1];
    let mut reader = FrameReader::new(Role::FromServer, MAX);
    let results: Vec<_> = bytes
        .iter()
        .map(|b| reader.feed(std::slice::from_ref(b), &mut |_| {}))
        .collect();
    assert!(results[..9].iter().all(Result::is_ok));
    assert_eq!(results[9], Err(FrameError::LengthTopBitSet));
}

#[test]
fn reader_stays_failed_after_an_error() {
    let mut reader = FrameReader::new(Role::FromServer, MAX);
    assert!(reader.feed(&[0x83, 0x00], &mut |_| {}).is_err());
    let valid = encoded(Opcode::Text, true, b"ok", None);
    assert_eq!(
        reader.feed(&valid, &mut |_| panic!("no events after failure")),
        Err(FrameError::ReservedOpcode(3))
    );
}

// --- encoding ---------------------------------------------------------------

#[test]
fn close_payload_has_code_and_reason() {
    assert_eq!(close_payload(1000, "bye"), [0x03, 0xe8, b'b', b'y', b'e']);
    assert_eq!(close_payload(4000, ""), [0x0f, 0xa0]);
}

#[test]
fn close_payload_reason_is_cut_on_a_char_boundary() {
    let reason = "é".repeat(100); // 200 bytes, 2 bytes per char
    let payload = close_payload(1001, &reason);
    assert_eq!(payload.len(), 124);
    assert!(std::str::from_utf8(&payload[2..]).is_ok());
    let reason = "x".repeat(300);
    assert_eq!(close_payload(1001, &reason).len(), 125);
    let reason = "€".repeat(50); // 3 bytes per char: 41 chars = 123 bytes
    assert_eq!(close_payload(1001, &reason).len(), 125);
}

#[test]
fn opcode_wire_values_round_trip() {
    for op in [
        Opcode::Continuation,
        Opcode::Text,
        Opcode::Binary,
        Opcode::Close,
        Opcode::Ping,
        Opcode::Pong,
    ] {
        assert_eq!(Opcode::from_u8(op.as_u8()), Some(op));
        assert_eq!(op.is_control(), op.as_u8() >= 8);
    }
}

// --- properties -------------------------------------------------------------

fn to_tungstenite(op: Opcode) -> OpCode {
    match op {
        Opcode::Continuation => OpCode::Data(Data::Continue),
        Opcode::Text => OpCode::Data(Data::Text),
        Opcode::Binary => OpCode::Data(Data::Binary),
        Opcode::Close => OpCode::Control(Control::Close),
        Opcode::Ping => OpCode::Control(Control::Ping),
        Opcode::Pong => OpCode::Control(Control::Pong),
    }
}

fn any_opcode() -> impl Strategy<Value = Opcode> {
    prop_oneof![
        Just(Opcode::Continuation),
        Just(Opcode::Text),
        Just(Opcode::Binary),
        Just(Opcode::Close),
        Just(Opcode::Ping),
        Just(Opcode::Pong),
    ]
}

/// Payload sizes that exercise every length encoding without being slow.
fn any_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..=130),
        1 => proptest::collection::vec(any::<u8>(), 120..=400),
        1 => (65530usize..=65540).prop_map(|n| vec![0x5A; n]),
    ]
}

/// One frame of a valid stream, as (opcode, fin, payload).
type Spec = (Opcode, bool, Vec<u8>);

/// A valid frame sequence: data messages split into fragments with control
/// frames interleaved.
fn valid_stream() -> impl Strategy<Value = Vec<Spec>> {
    let control = (
        prop_oneof![Just(Opcode::Close), Just(Opcode::Ping), Just(Opcode::Pong)],
        proptest::collection::vec(any::<u8>(), 0..=125),
    )
        .prop_map(|(op, p)| vec![(op, true, p)]);
    let data = (
        prop_oneof![Just(Opcode::Text), Just(Opcode::Binary)],
        proptest::collection::vec((any_payload(), proptest::option::of(any::<u8>())), 1..4),
    )
        .prop_map(|(op, parts)| {
            let last = parts.len() - 1;
            let mut frames = Vec::new();
            for (i, (payload, ping)) in parts.into_iter().enumerate() {
                let opcode = if i == 0 { op } else { Opcode::Continuation };
                frames.push((opcode, i == last, payload));
                if let (Some(b), true) = (ping, i != last) {
                    frames.push((Opcode::Ping, true, vec![b]));
                }
            }
            frames
        });
    proptest::collection::vec(prop_oneof![control, data], 0..6)
        .prop_map(|groups| groups.into_iter().flatten().collect())
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(prop_oneof![1usize..8, 8usize..300, 300usize..70000], 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        sizes in proptest::collection::vec(1usize..40, 1..8),
        max in prop_oneof![Just(0u64), Just(125), Just(MAX)],
    ) {
        for role in [Role::FromClient, Role::FromServer] {
            let mut reader = FrameReader::new(role, max);
            let whole = feed_chunked(&mut FrameReader::new(role, max), &bytes, &[usize::MAX]);
            let split = feed_chunked(&mut reader, &bytes, &sizes);
            // Chunking never changes the outcome.
            prop_assert_eq!(whole.is_ok(), split.is_ok());
            if let (Ok(a), Ok(b)) = (whole, split) {
                prop_assert_eq!(a, b);
            }
            let _ = reader.at_boundary();
            let _ = reader.remaining_payload();
        }
    }

    #[test]
    fn encoded_streams_read_back_exactly_in_any_chunking(
        stream in valid_stream(),
        sizes in chunk_sizes(),
        key in any::<[u8; 4]>(),
    ) {
        for role in [Role::FromClient, Role::FromServer] {
            let mask = (role == Role::FromClient).then_some(key);
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            let mut boundaries = vec![0usize];
            for (opcode, fin, payload) in &stream {
                encode_frame(&mut bytes, *opcode, *fin, payload, mask);
                boundaries.push(bytes.len());
                expected.extend(frame_events(
                    header(*opcode, *fin, mask, payload.len() as u64),
                    payload,
                ));
            }
            let mut reader = FrameReader::new(role, MAX);
            let mut events = Vec::new();
            let mut rest = &bytes[..];
            let mut offset = 0;
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                reader.feed(chunk, &mut |e| push_event(&mut events, e)).unwrap();
                offset += n;
                rest = tail;
                i += 1;
                prop_assert_eq!(reader.at_boundary(), boundaries.contains(&offset));
            }
            prop_assert_eq!(events, expected);
            prop_assert!(reader.at_boundary());
            prop_assert!(!reader.in_fragmented_message());
        }
    }

    #[test]
    fn encode_frame_matches_tungstenite(
        opcode in any_opcode(),
        fin in any::<bool>(),
        payload in any_payload(),
        mask in proptest::option::of(any::<[u8; 4]>()),
    ) {
        let ours = encoded(opcode, fin, &payload, mask);
        let theirs_header = TFrameHeader {
            is_final: fin,
            opcode: to_tungstenite(opcode),
            mask,
            ..TFrameHeader::default()
        };
        let mut theirs = Vec::new();
        Frame::from_payload(theirs_header.clone(), Bytes::from(payload.clone()))
            .format(&mut theirs)
            .unwrap();
        prop_assert_eq!(&ours, &theirs);

        // And tungstenite parses our header the same way we do.
        let mut cursor = std::io::Cursor::new(&ours);
        let (parsed, len) = TFrameHeader::parse(&mut cursor).unwrap().unwrap();
        prop_assert_eq!(parsed, theirs_header);
        prop_assert_eq!(len, payload.len() as u64);
    }
}
