use super::*;

/// Records everything the walker reports, descending into field 1 at any
/// depth and capturing field 2.
#[derive(Default)]
struct Recorder {
    seen: Vec<(u8, u32, u64)>,
    captured: Vec<u8>,
}

impl Visitor for Recorder {
    type Ctx = u8;

    fn varint(&mut self, ctx: u8, field: u32, value: u64) {
        self.seen.push((ctx, field, value));
    }

    fn len_field(&mut self, ctx: u8, field: u32, _len: u64) -> LenAction<u8> {
        match field {
            1 => LenAction::Descend(ctx + 1),
            2 => LenAction::Capture,
            _ => LenAction::Skip,
        }
    }

    fn bytes(&mut self, _ctx: u8, _field: u32, piece: &[u8]) {
        self.captured.extend_from_slice(piece);
    }
}

fn walk(bytes: &[u8]) -> Result<Recorder, ProtoError> {
    let mut walker: Walker<u8, 2> = Walker::new(0);
    let mut rec = Recorder::default();
    walker.feed(bytes, &mut rec)?;
    walker.finish()?;
    Ok(rec)
}

#[test]
fn varints_fixed_fields_and_nested_messages_are_walked() {
    // f3=150, f4 fixed64, f5 fixed32, f1{ f3=1, f2="ab" }, f6 skipped bytes
    let bytes = [
        0x18, 0x96, 0x01, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2d, 1, 2, 3, 4, 0x0a, 0x06, 0x18, 0x01,
        0x12, 0x02, b'a', b'b', 0x32, 0x01, 0xff,
    ];
    let rec = walk(&bytes).unwrap();
    assert_eq!(rec.seen, vec![(0, 3, 150), (1, 3, 1)]);
    assert_eq!(rec.captured, b"ab");
}

#[test]
fn ten_byte_varint_is_accepted_and_eleven_rejected() {
    let mut max = vec![0x08];
    max.extend([0xff; 9]);
    max.push(0x01);
    assert_eq!(walk(&max).unwrap().seen, vec![(0, 1, u64::MAX)]);
    let mut long = vec![0x08];
    long.extend([0x80; 10]);
    long.push(0x00);
    assert_eq!(
        walk(&long).err(),
        Some(ProtoError::VarintTooLong { field: Some(1) })
    );
}

#[test]
fn groups_and_invalid_wire_types_are_rejected() {
    assert_eq!(
        walk(&[0x0b]).err(),
        Some(ProtoError::Group {
            field: 1,
            wire_type: 3
        })
    );
    assert_eq!(
        walk(&[0x0c]).err(),
        Some(ProtoError::Group {
            field: 1,
            wire_type: 4
        })
    );
    assert_eq!(
        walk(&[0x0e]).err(),
        Some(ProtoError::InvalidWireType {
            field: 1,
            wire_type: 6
        })
    );
}

#[test]
fn field_number_zero_is_rejected() {
    assert_eq!(walk(&[0x00, 0x00]).err(), Some(ProtoError::InvalidTag(0)));
}

#[test]
fn nested_length_beyond_parent_is_rejected() {
    // f1 { f2 with length 5 } but f1 only has 2 bytes.
    assert_eq!(
        walk(&[0x0a, 0x02, 0x12, 0x05]).err(),
        Some(ProtoError::NestedOverrun {
            field: 2,
            len: 5,
            available: 0
        })
    );
}

#[test]
fn varint_crossing_the_end_of_its_message_is_rejected() {
    // f1 { f3 = <varint whose continuation crosses the end> } f4=1
    assert_eq!(
        walk(&[0x0a, 0x02, 0x18, 0x81, 0x20, 0x01]).err(),
        Some(ProtoError::FieldOverrun { field: Some(3) })
    );
}

#[test]
fn nesting_deeper_than_the_stack_is_rejected() {
    assert_eq!(
        walk(&[0x0a, 0x04, 0x0a, 0x02, 0x0a, 0x00]).err(),
        Some(ProtoError::TooDeep(2))
    );
}

#[test]
fn message_ending_mid_field_or_inside_a_submessage_is_truncated() {
    assert_eq!(
        walk(&[0x08]).err(),
        Some(ProtoError::Truncated { field: Some(1) })
    );
    assert_eq!(
        walk(&[0x88]).err(),
        Some(ProtoError::Truncated { field: None })
    );
    assert_eq!(
        walk(&[0x32, 0x03, 0]).err(),
        Some(ProtoError::Truncated { field: Some(6) })
    );
    assert_eq!(
        walk(&[0x0a, 0x03, 0x08]).err(),
        Some(ProtoError::Truncated { field: Some(1) })
    );
}

#[test]
fn empty_message_and_empty_nested_message_are_valid() {
    assert!(walk(&[]).unwrap().seen.is_empty());
    assert!(walk(&[0x0a, 0x00, 0x12, 0x00]).unwrap().captured.is_empty());
}

#[test]
fn walker_is_reusable_after_finish() {
    let mut walker: Walker<u8, 2> = Walker::new(0);
    let mut rec = Recorder::default();
    walker.feed(&[0x0a, 0x05], &mut rec).unwrap();
    assert!(walker.finish().is_err());
    walker.feed(&[0x08, 0x07], &mut rec).unwrap();
    assert!(walker.finish().is_ok());
    assert_eq!(rec.seen, vec![(0, 1, 7)]);
}
