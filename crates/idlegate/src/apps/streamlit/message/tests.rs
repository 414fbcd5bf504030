use super::*;
use proptest::prelude::*;

/// Minimal protobuf encoder, written independently of the scanners, used to
/// build test messages.
#[derive(Clone, Debug, Default)]
struct Enc(Vec<u8>);

fn varint_bytes(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return out;
        }
        out.push(low | 0x80);
    }
}

impl Enc {
    fn new() -> Self {
        Self::default()
    }
    fn tag(mut self, field: u32, wire: u8) -> Self {
        self.0
            .extend(varint_bytes(u64::from(field) << 3 | u64::from(wire)));
        self
    }
    fn varint(self, field: u32, v: u64) -> Self {
        let mut s = self.tag(field, 0);
        s.0.extend(varint_bytes(v));
        s
    }
    fn bytes(self, field: u32, b: &[u8]) -> Self {
        let mut s = self.tag(field, 2);
        s.0.extend(varint_bytes(b.len() as u64));
        s.0.extend_from_slice(b);
        s
    }
    fn msg(self, field: u32, m: Enc) -> Self {
        self.bytes(field, &m.0)
    }
    fn fixed32(self, field: u32) -> Self {
        let mut s = self.tag(field, 5);
        s.0.extend([1, 2, 3, 4]);
        s
    }
    fn fixed64(self, field: u32) -> Self {
        let mut s = self.tag(field, 1);
        s.0.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        s
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

fn back(bytes: &[u8]) -> Result<BackMsgKind, ProtoError> {
    let mut s = BackMsgScanner::new();
    s.feed(bytes)?;
    s.finish()
}

fn back_byte_by_byte(bytes: &[u8]) -> Result<BackMsgKind, ProtoError> {
    let mut s = BackMsgScanner::default();
    for b in bytes {
        s.feed(std::slice::from_ref(b))?;
    }
    s.finish()
}

fn fwd(bytes: &[u8]) -> Result<ForwardSummary, ProtoError> {
    let mut s = ForwardMsgScanner::new();
    s.feed(bytes)?;
    s.finish()
}

fn fwd_byte_by_byte(bytes: &[u8]) -> Result<ForwardSummary, ProtoError> {
    let mut s = ForwardMsgScanner::default();
    for b in bytes {
        s.feed(std::slice::from_ref(b))?;
    }
    s.finish()
}

fn rerun(client_state: Enc) -> Vec<u8> {
    Enc::new().msg(11, client_state).0
}

const AUTO: BackMsgKind = BackMsgKind::RerunScript {
    is_auto_rerun: true,
    fragment: false,
};
const HUMAN: BackMsgKind = BackMsgKind::RerunScript {
    is_auto_rerun: false,
    fragment: false,
};

// --- BackMsg ------------------------------------------------------------------

#[test]
fn rerun_script_with_is_auto_rerun_true_is_auto() {
    let bytes = rerun(Enc::new().bytes(1, b"a=1").varint(6, 1));
    assert_eq!(bytes[0], 0x5a);
    assert_eq!(back(&bytes).unwrap(), AUTO);
}

#[test]
fn rerun_script_with_is_auto_rerun_false_or_absent_is_human() {
    assert_eq!(back(&rerun(Enc::new().varint(6, 0))).unwrap(), HUMAN);
    assert_eq!(back(&rerun(Enc::new().bytes(1, b""))).unwrap(), HUMAN);
    assert_eq!(back(&rerun(Enc::new())).unwrap(), HUMAN);
}

#[test]
fn auto_rerun_after_large_widget_states_is_detected() {
    let widget_states = Enc::new().bytes(1, &vec![0x42; 300_000]);
    let cs = Enc::new()
        .bytes(1, b"")
        .msg(2, widget_states)
        .bytes(3, b"abcdef")
        .bytes(5, b"frag-id")
        .varint(6, 1)
        .bytes(7, b"h1")
        .bytes(7, b"h2");
    let bytes = rerun(cs);
    let auto_fragment = BackMsgKind::RerunScript {
        is_auto_rerun: true,
        fragment: true,
    };
    assert_eq!(back(&bytes).unwrap(), auto_fragment);
    let mut s = BackMsgScanner::new();
    for chunk in bytes.chunks(1000) {
        s.feed(chunk).unwrap();
    }
    assert_eq!(s.finish().unwrap(), auto_fragment);
}

#[test]
fn a_rerun_naming_a_fragment_is_a_fragment_rerun() {
    let fragment = |id: &[u8]| Enc::new().bytes(5, id);
    let cs = fragment(b"f1").varint(6, 1);
    assert_eq!(
        back(&rerun(cs)),
        Ok(BackMsgKind::RerunScript {
            is_auto_rerun: true,
            fragment: true
        })
    );
    // An empty fragment id is the page; the last occurrence wins.
    assert_eq!(back(&rerun(fragment(b""))), Ok(HUMAN));
    assert_eq!(
        back(&rerun(fragment(b"f1").raw(&fragment(b"").0))),
        Ok(HUMAN)
    );
    assert_eq!(
        back_byte_by_byte(&rerun(fragment(b"").raw(&fragment(b"f2").0))),
        Ok(BackMsgKind::RerunScript {
            is_auto_rerun: false,
            fragment: true
        })
    );
}

#[test]
fn table_row_requests_name_their_source_and_sort() {
    let chunk = |source: &[u8], sort: Option<&[u8]>| {
        let mut payload = Enc::new().bytes(1, source).varint(2, 2000).varint(3, 1000);
        if let Some(sort) = sort {
            payload = payload.bytes(4, sort);
        }
        Enc::new()
            .msg(
                19,
                Enc::new()
                    .bytes(1, b"req-1")
                    .bytes(2, b"sid")
                    .msg(6, payload),
            )
            .0
    };
    let scan = |bytes: &[u8]| {
        let mut scanner = BackMsgScanner::new();
        for piece in bytes.chunks(3) {
            scanner.feed(piece).unwrap();
        }
        assert_eq!(scanner.finish(), Ok(BackMsgKind::BackendOperationRequest));
        scanner.chunk().expect("a chunk request")
    };
    let unsorted = scan(&chunk(b"source-a", None));
    assert_eq!(unsorted.sort, 0);
    let sorted = scan(&chunk(b"source-a", Some(b"\x0a\x03abc")));
    assert_eq!(sorted.source, unsorted.source);
    assert_ne!(sorted.sort, 0);
    let other = scan(&chunk(b"source-b", Some(b"\x0a\x03abc")));
    assert_ne!(other.source, sorted.source);
    assert_eq!(other.sort, sorted.sort);
    // Another operation (a deferred file) is no chunk request.
    let mut scanner = BackMsgScanner::new();
    scanner
        .feed(
            &Enc::new()
                .msg(19, Enc::new().msg(3, Enc::new().bytes(1, b"f")))
                .0,
        )
        .unwrap();
    assert_eq!(scanner.finish(), Ok(BackMsgKind::BackendOperationRequest));
    assert_eq!(scanner.chunk(), None);
}

#[test]
fn repeated_is_auto_rerun_last_value_wins() {
    assert_eq!(
        back(&rerun(Enc::new().varint(6, 1).varint(6, 0))).unwrap(),
        HUMAN
    );
    assert_eq!(
        back(&rerun(Enc::new().varint(6, 0).varint(6, 1))).unwrap(),
        AUTO
    );
}

#[test]
fn non_canonical_true_bool_counts_as_true() {
    assert_eq!(back(&rerun(Enc::new().varint(6, 300))).unwrap(), AUTO);
}

#[test]
fn repeated_rerun_script_merges_like_protobuf() {
    // The second occurrence does not set is_auto_rerun, so the first value
    // survives the merge.
    let mut bytes = rerun(Enc::new().varint(6, 1));
    bytes.extend(rerun(Enc::new().bytes(1, b"q")));
    assert_eq!(back(&bytes).unwrap(), AUTO);
}

#[test]
fn switching_oneof_member_discards_previous_client_state() {
    let mut bytes = rerun(Enc::new().varint(6, 1));
    bytes.extend(Enc::new().varint(7, 1).0);
    bytes.extend(rerun(Enc::new()));
    assert_eq!(back(&bytes).unwrap(), HUMAN);
}

#[test]
fn last_oneof_member_wins() {
    let mut bytes = rerun(Enc::new().varint(6, 1));
    bytes.extend(Enc::new().varint(17, 1).0);
    assert_eq!(back(&bytes).unwrap(), BackMsgKind::AppHeartbeat);
    let mut bytes = Enc::new().varint(17, 1).0;
    bytes.extend(rerun(Enc::new()));
    assert_eq!(back(&bytes).unwrap(), HUMAN);
}

#[test]
fn every_backmsg_member_is_classified() {
    use BackMsgKind as K;
    let cases = [
        (Enc::new().varint(5, 1), K::ClearCache),
        (Enc::new().varint(6, 1), K::SetRunOnSave),
        (Enc::new().varint(7, 1), K::StopScript),
        (Enc::new().varint(12, 1), K::LoadGitInfo),
        (Enc::new().varint(14, 1), K::DebugDisconnectWebsocket),
        (Enc::new().varint(15, 1), K::DebugShutdownRuntime),
        (Enc::new().bytes(16, b"\x0a\x01x"), K::FileUrlsRequest),
        (Enc::new().varint(17, 1), K::AppHeartbeat),
        (Enc::new().bytes(19, b""), K::BackendOperationRequest),
        // A present member with the default value still selects it.
        (Enc::new().varint(17, 0), K::AppHeartbeat),
    ];
    for (enc, kind) in cases {
        assert_eq!(back(&enc.0).unwrap(), kind);
        assert_eq!(back_byte_by_byte(&enc.0).unwrap(), kind);
    }
}

#[test]
fn encode_set_run_on_save_is_classified_as_set_run_on_save() {
    assert_eq!(encode_set_run_on_save(false), [0x30, 0x00]);
    assert_eq!(
        back(&encode_set_run_on_save(false)).unwrap(),
        BackMsgKind::SetRunOnSave
    );
}

#[test]
fn empty_backmsg_is_empty() {
    assert_eq!(back(&[]).unwrap(), BackMsgKind::Empty);
}

#[test]
fn unknown_fields_are_skipped_and_do_not_hide_a_known_member() {
    let bytes = Enc::new()
        .varint(1, 9)
        .fixed64(3)
        .msg(11, Enc::new().fixed32(99).varint(6, 1).bytes(1000, b"zz"))
        .bytes(18, b"reserved")
        .fixed32(100)
        .0;
    assert_eq!(back(&bytes).unwrap(), AUTO);
}

#[test]
fn only_unknown_fields_report_the_last_unknown_number() {
    let bytes = Enc::new().varint(13, 1).bytes(42, b"x").0;
    assert_eq!(back(&bytes).unwrap(), BackMsgKind::Unknown(42));
}

#[test]
fn known_field_with_wrong_wire_type_is_treated_as_unknown() {
    // stop_script as bytes and rerun_script as a varint are unknown fields.
    assert_eq!(
        back(&Enc::new().bytes(7, b"").0).unwrap(),
        BackMsgKind::Empty
    );
    assert_eq!(
        back(&Enc::new().varint(11, 1).0).unwrap(),
        BackMsgKind::Empty
    );
    // is_auto_rerun as bytes is ignored.
    assert_eq!(back(&rerun(Enc::new().bytes(6, b"\x01"))).unwrap(), HUMAN);
}

#[test]
fn truncated_backmsg_is_an_error_at_finish() {
    let bytes = rerun(Enc::new().bytes(2, &[0; 50]).varint(6, 1));
    for cut in 1..bytes.len() {
        let mut s = BackMsgScanner::new();
        s.feed(&bytes[..cut]).unwrap();
        assert!(
            matches!(s.finish(), Err(ProtoError::Truncated { .. })),
            "cut at {cut}"
        );
    }
}

#[test]
fn group_wire_types_are_rejected() {
    assert_eq!(
        back(&[0x5b]).unwrap_err(),
        ProtoError::Group {
            field: 11,
            wire_type: 3
        }
    );
    assert_eq!(
        back(&rerun(Enc::new().tag(2, 4))).unwrap_err(),
        ProtoError::Group {
            field: 2,
            wire_type: 4
        }
    );
}

#[test]
fn overlong_varint_is_rejected() {
    let bytes = Enc::new().tag(17, 0).raw(&[0xff; 11]).raw(&[0]).0;
    assert_eq!(
        back(&bytes).unwrap_err(),
        ProtoError::VarintTooLong { field: Some(17) }
    );
}

#[test]
fn nested_length_overrunning_client_state_is_rejected() {
    // ClientState claims 3 bytes; inside, field 1 claims 10.
    let bytes = [0x5a, 0x03, 0x0a, 0x0a, 0x00];
    assert!(matches!(
        back(&bytes).unwrap_err(),
        ProtoError::NestedOverrun {
            field: 1,
            len: 10,
            ..
        }
    ));
}

#[test]
fn scanner_errors_persist_until_finish_and_then_reset() {
    let mut s = BackMsgScanner::new();
    assert!(s.feed(&[0x5b]).is_err());
    assert!(s.feed(&[0x38, 0x01]).is_err());
    assert!(s.finish().is_err());
    s.feed(&[0x38, 0x01]).unwrap();
    assert_eq!(s.finish().unwrap(), BackMsgKind::StopScript);
}

#[test]
fn reset_discards_the_message_in_progress() {
    let mut s = BackMsgScanner::new();
    s.feed(&[0x5a, 0x10, 0x30]).unwrap();
    s.reset();
    s.feed(&Enc::new().varint(5, 1).0).unwrap();
    assert_eq!(s.finish().unwrap(), BackMsgKind::ClearCache);
    let mut f = ForwardMsgScanner::new();
    f.feed(&[0x22, 0x10]).unwrap();
    f.reset();
    assert_eq!(f.finish().unwrap(), ForwardSummary::default());
}

// --- ForwardMsg ---------------------------------------------------------------

const SID: &str = "0b9c6c38-6c9a-4f21-a2a5-0e1b4c5d6e7f";

fn new_session(initialize: Enc) -> Enc {
    Enc::new()
        .bytes(1, b"hash")
        .msg(2, Enc::new().varint(1, 3))
        .msg(
            4,
            Enc::new()
                .msg(1, initialize)
                .bytes(3, b"app")
                .bytes(4, b"/app/main.py")
                .msg(6, Enc::new().bytes(1, &[7; 500])),
        )
}

#[test]
fn auth_redirect_encoding_matches_reference_bytes() {
    assert_eq!(
        encode_auth_redirect("/x"),
        [0xc2, 0x01, 0x04, 0x0a, 0x02, 0x2f, 0x78]
    );
    assert_eq!(
        fwd(&encode_auth_redirect("/x")).unwrap().kind,
        Some(forward::fields::AUTH_REDIRECT)
    );
    let long = "/".repeat(300);
    let bytes = encode_auth_redirect(&long);
    let mut expected = Enc::new();
    expected = expected.msg(24, Enc::new().bytes(1, long.as_bytes()));
    assert_eq!(bytes, expected.0);
}

#[test]
fn script_finished_reference_bytes_are_summarized() {
    assert_eq!(
        fwd(&[0x30, 0x03]).unwrap(),
        ForwardSummary {
            kind: Some(6),
            script_finished: Some(3),
            ..ForwardSummary::default()
        }
    );
}

#[test]
fn session_id_after_large_user_and_environment_info_is_captured() {
    let init = Enc::new()
        .msg(1, Enc::new().bytes(1, &vec![1; 100_000]))
        .msg(3, Enc::new().bytes(1, &vec![2; 70_000]))
        .varint(7, 1)
        .bytes(6, SID.as_bytes());
    let bytes = new_session(init).0;
    let expected = ForwardSummary {
        kind: Some(4),
        session_id: Some(SID.to_owned()),
        script_is_running: None,
        script_finished: None,
        streamlit_version: None,
    };
    assert_eq!(fwd(&bytes).unwrap(), expected);
    assert_eq!(fwd_byte_by_byte(&bytes).unwrap(), expected);
}

#[test]
fn new_session_initial_status_is_reported_when_present() {
    let running = Enc::new()
        .msg(4, Enc::new().varint(1, 1).varint(2, 1))
        .bytes(6, SID.as_bytes());
    assert_eq!(
        fwd(&new_session(running).0).unwrap().script_is_running,
        Some(true)
    );
    let idle = Enc::new().msg(4, Enc::new().varint(1, 1));
    assert_eq!(
        fwd(&new_session(idle).0).unwrap().script_is_running,
        Some(false)
    );
}

#[test]
fn session_id_that_is_too_long_or_not_utf8_is_dropped() {
    let long = Enc::new().bytes(6, &[b'a'; 65]);
    assert_eq!(fwd(&new_session(long).0).unwrap().session_id, None);
    let exact = Enc::new().bytes(6, &[b'a'; 64]);
    assert_eq!(
        fwd(&new_session(exact).0).unwrap().session_id,
        Some("a".repeat(64))
    );
    let invalid = Enc::new().bytes(6, &[0xff, 0xfe]);
    assert_eq!(fwd(&new_session(invalid).0).unwrap().session_id, None);
}

#[test]
fn repeated_session_id_last_occurrence_wins() {
    let init = Enc::new().bytes(6, b"first").bytes(6, SID.as_bytes());
    assert_eq!(
        fwd(&new_session(init).0).unwrap().session_id,
        Some(SID.to_owned())
    );
    let init = Enc::new().bytes(6, SID.as_bytes()).bytes(6, &[b'x'; 100]);
    assert_eq!(fwd(&new_session(init).0).unwrap().session_id, None);
}

#[test]
fn session_status_changed_without_field_2_is_not_running() {
    let bytes = Enc::new().msg(9, Enc::new().varint(1, 1)).0;
    assert_eq!(
        fwd(&bytes).unwrap(),
        ForwardSummary {
            kind: Some(9),
            script_is_running: Some(false),
            ..ForwardSummary::default()
        }
    );
    assert_eq!(
        fwd(&Enc::new().msg(9, Enc::new()).0)
            .unwrap()
            .script_is_running,
        Some(false)
    );
}

#[test]
fn session_status_changed_with_field_2_is_running() {
    let bytes = Enc::new().msg(9, Enc::new().varint(2, 1)).0;
    assert_eq!(fwd(&bytes).unwrap().script_is_running, Some(true));
    assert_eq!(
        fwd_byte_by_byte(&bytes).unwrap().script_is_running,
        Some(true)
    );
}

#[test]
fn later_oneof_member_clears_new_session_data() {
    let mut bytes = new_session(Enc::new().bytes(6, SID.as_bytes())).0;
    bytes.extend(Enc::new().msg(5, Enc::new().bytes(1, &[0; 1000])).0);
    assert_eq!(
        fwd(&bytes).unwrap(),
        ForwardSummary {
            kind: Some(5),
            ..ForwardSummary::default()
        }
    );
}

#[test]
fn hash_metadata_and_unknown_fields_do_not_set_the_kind() {
    let bytes = Enc::new()
        .bytes(1, b"hash")
        .msg(2, Enc::new().varint(1, 1))
        .varint(26, 1)
        .fixed64(999)
        .bytes(3, b"?")
        .0;
    assert_eq!(fwd(&bytes).unwrap().kind, Some(26));
    let only_meta = Enc::new().bytes(1, b"hash").msg(2, Enc::new()).0;
    assert_eq!(fwd(&only_meta).unwrap().kind, None);
    let only_unknown = Enc::new().bytes(1, b"hash").fixed32(77).0;
    assert_eq!(fwd(&only_unknown).unwrap().kind, Some(77));
}

#[test]
fn truncated_forwardmsg_is_an_error_at_finish() {
    let bytes = new_session(Enc::new().bytes(6, SID.as_bytes())).0;
    // hash and metadata come first and form a valid prefix by themselves.
    let hash = Enc::new().bytes(1, b"hash").0;
    let prefix = Enc::new().raw(&hash).msg(2, Enc::new().varint(1, 3)).0;
    assert!(fwd(&hash).is_ok() && fwd(&prefix).is_ok());
    for cut in (1..bytes.len()).filter(|&c| c != hash.len() && c != prefix.len()) {
        let mut s = ForwardMsgScanner::new();
        s.feed(&bytes[..cut]).unwrap();
        assert!(s.finish().is_err(), "cut at {cut}");
    }
}

#[test]
fn nested_overrun_inside_initialize_is_rejected() {
    // NewSession{ Initialize(len 2){ session_id(len 36) } }
    let bytes = [0x22, 0x04, 0x0a, 0x02, 0x32, 0x24];
    assert!(matches!(
        fwd(&bytes).unwrap_err(),
        ProtoError::NestedOverrun {
            field: 6,
            len: 36,
            ..
        }
    ));
}

#[test]
fn scanner_is_reusable_across_messages() {
    let mut s = ForwardMsgScanner::new();
    s.feed(&new_session(Enc::new().bytes(6, SID.as_bytes())).0)
        .unwrap();
    assert_eq!(s.finish().unwrap().session_id, Some(SID.to_owned()));
    s.feed(&[0x30, 0x01]).unwrap();
    assert_eq!(s.finish().unwrap().session_id, None);
}

// --- properties ---------------------------------------------------------------

/// An unknown-to-the-schema field of any valid wire type.
fn unknown_field(numbers: impl Strategy<Value = u32>) -> impl Strategy<Value = Enc> {
    (
        numbers,
        0u8..4,
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(n, w, v, b)| match w {
            0 => Enc::new().varint(n, v),
            1 => Enc::new().fixed64(n),
            2 => Enc::new().bytes(n, &b),
            _ => Enc::new().fixed32(n),
        })
}

fn back_unknown_number() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop_oneof![1u32..=4, 8u32..=10, Just(13), Just(18)],
        20u32..5000,
        Just((1 << 29) - 1),
    ]
}

/// A ClientState item, and the is_auto_rerun value it sets if any.
fn client_state_item() -> impl Strategy<Value = (Enc, Option<bool>)> {
    prop_oneof![
        prop_oneof![Just(0u64), Just(1), Just(2), Just(1 << 40)]
            .prop_map(|v| (Enc::new().varint(6, v), Some(v != 0))),
        proptest::collection::vec(any::<u8>(), 0..3000)
            .prop_map(|b| (Enc::new().msg(2, Enc::new().bytes(1, &b)), None)),
        "[a-z=&]{0,20}".prop_map(|s| (Enc::new().bytes(1, s.as_bytes()), None)),
        Just((Enc::new().varint(9, 1), None)),
        unknown_field(prop_oneof![10u32..100, Just(6)]).prop_map(|e| {
            // Field 6 is only meaningful as a varint; other wire types of
            // it are unknown fields.
            let is_varint_6 = e.0.first() == Some(&0x30);
            let value = is_varint_6.then(|| e.0.get(1..) != Some(&[0][..]));
            (e, value)
        }),
    ]
}

#[derive(Clone, Debug)]
enum BackItem {
    Member(Enc, BackMsgKind),
    Rerun(Enc, Option<bool>),
    Unknown(Enc, u32),
}

fn back_item() -> impl Strategy<Value = BackItem> {
    use BackMsgKind as K;
    let scalar = prop_oneof![
        Just((5u32, K::ClearCache)),
        Just((6, K::SetRunOnSave)),
        Just((7, K::StopScript)),
        Just((12, K::LoadGitInfo)),
        Just((14, K::DebugDisconnectWebsocket)),
        Just((15, K::DebugShutdownRuntime)),
        Just((17, K::AppHeartbeat)),
    ];
    prop_oneof![
        (scalar, any::<bool>())
            .prop_map(|((n, k), v)| BackItem::Member(Enc::new().varint(n, u64::from(v)), k)),
        proptest::collection::vec(any::<u8>(), 0..50)
            .prop_map(|b| BackItem::Member(Enc::new().bytes(16, &b), K::FileUrlsRequest)),
        // A backend operation is walked into (for table-row requests), so it is well formed:
        // a request id and maybe a dataframe chunk with opaque source and sort bytes.
        (
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::option::of((
                proptest::collection::vec(any::<u8>(), 0..20),
                proptest::collection::vec(any::<u8>(), 0..20),
            )),
        )
            .prop_map(|(request, chunk)| {
                let mut op = Enc::new().bytes(1, &request);
                if let Some((source, sort)) = chunk {
                    op = op.msg(6, Enc::new().bytes(1, &source).bytes(4, &sort));
                }
                BackItem::Member(Enc::new().msg(19, op), K::BackendOperationRequest)
            }),
        proptest::collection::vec(client_state_item(), 0..6).prop_map(|items| {
            let mut cs = Enc::new();
            let mut auto = None;
            for (e, v) in items {
                cs = cs.raw(&e.0);
                auto = v.or(auto);
            }
            BackItem::Rerun(Enc::new().msg(11, cs), auto)
        }),
        back_unknown_number()
            .prop_flat_map(|n| unknown_field(Just(n)).prop_map(move |e| BackItem::Unknown(e, n))),
    ]
}

/// Expected classification, following protobuf merge and oneof rules.
fn back_model(items: &[BackItem]) -> BackMsgKind {
    let mut kind: Option<BackMsgKind> = None;
    let mut unknown = None;
    for item in items {
        match item {
            BackItem::Member(_, k) => kind = Some(*k),
            BackItem::Rerun(_, set) => {
                let previous = match kind {
                    Some(BackMsgKind::RerunScript { is_auto_rerun, .. }) => is_auto_rerun,
                    _ => false,
                };
                kind = Some(BackMsgKind::RerunScript {
                    is_auto_rerun: set.unwrap_or(previous),
                    fragment: false,
                });
            }
            BackItem::Unknown(_, n) => unknown = Some(*n),
        }
    }
    kind.or(unknown.map(BackMsgKind::Unknown))
        .unwrap_or(BackMsgKind::Empty)
}

#[derive(Clone, Debug)]
enum FwdItem {
    /// A oneof member that carries nothing the summary reports.
    Member(Enc, u32),
    ScriptFinished(Enc, u64),
    /// session_status_changed; `Some` if script_is_running is set.
    Status(Enc, Option<bool>),
    /// new_session with its session id (outer None: absent; inner None:
    /// present but invalid) and initial status (`Some(None)`: status
    /// present without field 2).
    NewSession(Enc, Option<Option<String>>, Option<Option<bool>>),
    /// hash or metadata
    Other(Enc),
    Unknown(Enc, u32),
}

fn status_msg() -> impl Strategy<Value = (Enc, Option<bool>)> {
    (any::<bool>(), proptest::option::of(any::<bool>())).prop_map(|(ros, running)| {
        let mut e = Enc::new().varint(1, u64::from(ros));
        if let Some(r) = running {
            e = e.varint(2, u64::from(r));
        }
        (e, running)
    })
}

fn session_id() -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
    prop_oneof![
        "[0-9a-f-]{36}".prop_map(|s| (s.clone().into_bytes(), Some(s))),
        "[a-z]{0,64}".prop_map(|s| (s.clone().into_bytes(), Some(s))),
        "[a-z]{65,80}".prop_map(|s| (s.into_bytes(), None)),
        Just((vec![0xc3, 0x28], None)),
    ]
}

fn fwd_item() -> impl Strategy<Value = FwdItem> {
    let init = (
        proptest::collection::vec(any::<u8>(), 0..2000),
        proptest::option::of(session_id()),
        proptest::option::of(status_msg()),
        any::<bool>(),
    )
        .prop_map(|(info, sid, status, status_first)| {
            let mut init = Enc::new().msg(1, Enc::new().bytes(1, &info)).varint(7, 1);
            let push_status = |init: Enc| match &status {
                Some((e, _)) => init.msg(4, e.clone()),
                None => init,
            };
            if status_first {
                init = push_status(init);
            }
            if let Some((bytes, _)) = &sid {
                init = init.bytes(6, bytes);
            }
            if !status_first {
                init = push_status(init);
            }
            let ns = Enc::new()
                .msg(1, init)
                .bytes(3, b"name")
                .msg(8, Enc::new().bytes(1, b"page"));
            FwdItem::NewSession(
                Enc::new().msg(4, ns),
                sid.map(|(_, s)| s),
                status.map(|(_, r)| r),
            )
        });
    let member_len = prop_oneof![Just(5u32), 10u32..=15, 18u32..=24, Just(27), Just(28)];
    prop_oneof![
        (member_len, proptest::collection::vec(any::<u8>(), 0..3000))
            .prop_map(|(n, b)| FwdItem::Member(Enc::new().bytes(n, &b), n)),
        any::<bool>().prop_map(|v| FwdItem::Member(Enc::new().varint(26, u64::from(v)), 26)),
        any::<u64>().prop_map(|v| FwdItem::ScriptFinished(Enc::new().varint(6, v), v)),
        status_msg().prop_map(|(e, r)| FwdItem::Status(Enc::new().msg(9, e), r)),
        init,
        Just(FwdItem::Other(Enc::new().bytes(1, b"0123456789abcdef"))),
        Just(FwdItem::Other(Enc::new().msg(2, Enc::new().varint(1, 7)))),
        prop_oneof![
            Just(3u32),
            7u32..=8,
            Just(16),
            Just(17),
            Just(25),
            29u32..5000
        ]
        .prop_flat_map(|n| unknown_field(Just(n)).prop_map(move |e| FwdItem::Unknown(e, n))),
    ]
}

/// Expected summary, following protobuf merge and oneof rules.
fn fwd_model(items: &[FwdItem]) -> ForwardSummary {
    let mut kind = None;
    let mut unknown = None;
    let mut sid: Option<Option<String>> = None;
    let mut init_running: Option<bool> = None;
    let mut changed_running = false;
    let mut finished = 0;
    for item in items {
        let member = match item {
            FwdItem::Member(_, n) => Some(*n),
            FwdItem::ScriptFinished(..) => Some(6),
            FwdItem::Status(..) => Some(9),
            FwdItem::NewSession(..) => Some(4),
            FwdItem::Other(_) | FwdItem::Unknown(..) => None,
        };
        if member.is_some() && member != kind {
            // Switching the oneof member discards the previous one.
            kind = member;
            sid = None;
            init_running = None;
            changed_running = false;
            finished = 0;
        }
        match item {
            FwdItem::ScriptFinished(_, v) => finished = *v,
            FwdItem::Status(_, Some(r)) => changed_running = *r,
            FwdItem::NewSession(_, s, status) => {
                if let Some(s) = s {
                    sid = Some(s.clone());
                }
                if let Some(r) = status {
                    init_running = Some(r.unwrap_or(init_running.unwrap_or(false)));
                }
            }
            FwdItem::Unknown(_, n) => unknown = Some(*n),
            _ => {}
        }
    }
    match kind {
        None => ForwardSummary {
            kind: unknown,
            ..ForwardSummary::default()
        },
        Some(k) => ForwardSummary {
            kind: Some(k),
            session_id: if k == 4 { sid.flatten() } else { None },
            script_is_running: match k {
                9 => Some(changed_running),
                4 => init_running,
                _ => None,
            },
            script_finished: (k == 6).then_some(finished),
            streamlit_version: None,
        },
    }
}

/// Common shape of the two scanners, for chunking tests.
trait Scan {
    type Out;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), ProtoError>;
    fn finish(&mut self) -> Result<Self::Out, ProtoError>;
}

impl Scan for BackMsgScanner {
    type Out = BackMsgKind;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), ProtoError> {
        BackMsgScanner::feed(self, bytes)
    }
    fn finish(&mut self) -> Result<BackMsgKind, ProtoError> {
        BackMsgScanner::finish(self)
    }
}

impl Scan for ForwardMsgScanner {
    type Out = ForwardSummary;
    fn feed(&mut self, bytes: &[u8]) -> Result<(), ProtoError> {
        ForwardMsgScanner::feed(self, bytes)
    }
    fn finish(&mut self) -> Result<ForwardSummary, ProtoError> {
        ForwardMsgScanner::finish(self)
    }
}

/// Feeds `bytes` in chunks of the given sizes (cycled), then finishes.
fn feed_split<S: Scan>(
    scanner: &mut S,
    bytes: &[u8],
    sizes: &[usize],
) -> Result<S::Out, ProtoError> {
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        if let Err(e) = scanner.feed(chunk) {
            // The error must persist until finish.
            let again = scanner.finish();
            assert_eq!(again.as_ref().err(), Some(&e));
            return Err(e);
        }
        rest = tail;
        i += 1;
    }
    scanner.finish()
}

fn split_sizes() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(prop_oneof![1usize..5, 5usize..200, 200usize..5000], 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_does_not_matter(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        sizes in split_sizes(),
    ) {
                let split = feed_split(&mut BackMsgScanner::new(), &bytes, &sizes);
        prop_assert_eq!(split, back(&bytes));
                let split = feed_split(&mut ForwardMsgScanner::new(), &bytes, &sizes);
        prop_assert_eq!(split, fwd(&bytes));
    }

    #[test]
    fn arbitrary_bytes_inside_known_paths_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        sizes in split_sizes(),
    ) {
        // Wrap noise in the nested paths the scanners descend into.
        let back_bytes = Enc::new().bytes(11, &body).0;
                let _ = feed_split(&mut BackMsgScanner::new(), &back_bytes, &sizes);
        for wrapped in [
            Enc::new().bytes(4, &Enc::new().bytes(1, &body).0).0,
            Enc::new().bytes(4, &Enc::new().bytes(1, &Enc::new().bytes(4, &body).0).0).0,
            Enc::new().bytes(9, &body).0,
        ] {
                        let split = feed_split(&mut ForwardMsgScanner::new(), &wrapped, &sizes);
            prop_assert_eq!(split, fwd(&wrapped));
        }
    }

    #[test]
    fn generated_backmsgs_classify_as_generated(
        items in proptest::collection::vec(back_item(), 0..6),
        sizes in split_sizes(),
    ) {
        let bytes: Vec<u8> = items
            .iter()
            .flat_map(|i| match i {
                BackItem::Member(e, _) | BackItem::Rerun(e, _) | BackItem::Unknown(e, _) => e.0.clone(),
            })
            .collect();
                let got = feed_split(&mut BackMsgScanner::new(), &bytes, &sizes);
        prop_assert_eq!(got, Ok(back_model(&items)));
    }

    #[test]
    fn generated_forwardmsgs_summarize_as_generated(
        items in proptest::collection::vec(fwd_item(), 0..6),
        sizes in split_sizes(),
    ) {
        let bytes: Vec<u8> = items
            .iter()
            .flat_map(|i| match i {
                FwdItem::Member(e, _)
                | FwdItem::ScriptFinished(e, _)
                | FwdItem::Status(e, _)
                | FwdItem::NewSession(e, _, _)
                | FwdItem::Other(e)
                | FwdItem::Unknown(e, _) => e.0.clone(),
            })
            .collect();
                let got = feed_split(&mut ForwardMsgScanner::new(), &bytes, &sizes);
        prop_assert_eq!(got, Ok(fwd_model(&items)));
    }
}

#[test]
fn the_apps_streamlit_version_is_captured_from_new_session() {
    let init = Enc::new()
        .msg(1, Enc::new().bytes(5, b"machine"))
        .msg(3, Enc::new().bytes(1, b"1.67.0").bytes(2, b"3.11.2"))
        .bytes(6, SID.as_bytes());
    let bytes = new_session(init).0;
    let summary = fwd(&bytes).unwrap();
    assert_eq!(summary.streamlit_version.as_deref(), Some("1.67.0"));
    assert_eq!(summary.session_id.as_deref(), Some(SID));
    assert_eq!(fwd_byte_by_byte(&bytes).unwrap(), summary);
}

#[test]
fn a_page_drawn_in_place_on_a_new_connection_names_the_apps_version() {
    let messages = encode_page_replacement("run", "Session ended", "### ended", Some("1.67.0"));
    let started = fwd(&messages[0]).unwrap();
    assert_eq!(started.kind, Some(4));
    assert_eq!(started.streamlit_version.as_deref(), Some("1.67.0"));
    assert_eq!(started.session_id.as_deref(), Some("idlegate-ended"));
    assert_eq!(started.script_is_running, Some(false));
    // Without a known version, `initialize` stays empty: a page still connected keeps the
    // version it has.
    let messages = encode_page_replacement("run", "Session ended", "### ended", None);
    let started = fwd(&messages[0]).unwrap();
    assert_eq!(started.streamlit_version, None);
    assert_eq!(started.session_id, None);
}
