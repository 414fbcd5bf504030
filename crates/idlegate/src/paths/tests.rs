use super::*;

fn canon(raw: &str) -> String {
    canonical(raw).expect("absolute path").into_owned()
}

#[test]
fn plain_paths_are_borrowed_unchanged() {
    for raw in [
        "/",
        "/_stcore/stream",
        "/app/page_two",
        "/a/b/",
        "/media/abc.png",
        "/x:y@z",
    ] {
        assert!(matches!(canonical(raw), Ok(Cow::Borrowed(_))), "{raw}");
        assert_eq!(canon(raw), raw);
    }
}

#[test]
fn encoded_forms_of_the_session_socket_are_the_session_socket() {
    for raw in [
        "/_stcore/%73tream",
        "/_stcore%2Fstream",
        "/_stcore%2fstream",
        "/%5Fstcore/stream",
        "/%5fstcore/%73%74%72%65%61%6d",
        "//_stcore//stream",
        "/_stcore/./stream",
        "/x/../_stcore/stream",
        "/_stcore/%2E/stream",
        "/a/b/%2e%2e/%2E%2E/_stcore/stream",
    ] {
        assert_eq!(canon(raw), "/_stcore/stream", "{raw}");
    }
    assert_eq!(
        canon("/app/_stcore/upload%5Ffile/s/f"),
        "/app/_stcore/upload_file/s/f"
    );
}

#[test]
fn escapes_are_decoded_once_only() {
    // A server decodes once: `%2573` reads as the text `%73`, which is not `s`.
    assert_eq!(canon("/_stcore/%2573tream"), "/_stcore/%2573tream");
    assert_eq!(decoded(&canon("/_stcore/%2573tream")), b"/_stcore/%73tream");
}

#[test]
fn bytes_that_cannot_stand_in_a_path_stay_encoded() {
    assert_eq!(canon("/a%20b"), "/a%20b");
    assert_eq!(canon("/a%3Fb%23c"), "/a%3Fb%23c");
    assert_eq!(canon("/caf%c3%a9"), "/caf%C3%A9");
    assert_eq!(canon("/bad%zz/%"), "/bad%25zz/%25");
    assert_eq!(canon("/%00"), "/%00");
    assert_eq!(canon("/%ff"), "/%FF");
}

#[test]
fn dot_segments_never_climb_above_the_root() {
    assert_eq!(canon("/../../etc/passwd"), "/etc/passwd");
    assert_eq!(canon("/.."), "/");
    assert_eq!(canon("/a/."), "/a/");
    assert_eq!(canon("/a/.."), "/");
    assert_eq!(canon("/a/b/.."), "/a/");
}

#[test]
fn only_absolute_paths_have_a_canonical_form() {
    assert_eq!(canonical("*"), Err(PathError::NotAbsolute));
    assert_eq!(canonical(""), Err(PathError::NotAbsolute));
    assert_eq!(canonical("a/b"), Err(PathError::NotAbsolute));
}

/// What a server routes for a raw path: decoded once, then dot segments and empty segments
/// dropped. The model the canonical form must agree with.
fn routed(raw: &str) -> Vec<Vec<u8>> {
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for segment in decode_once(raw.as_bytes()).split(|b| *b == b'/') {
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

proptest::proptest! {
    #[test]
    fn canonical_is_what_the_server_routes(raw in "/[a-z_/.%0-9A-F\\PC]{0,40}") {
        let canon = canonical(&raw).unwrap();
        // Decoding the canonical form once gives the same segments as the raw path.
        let routed_canon = routed(&canon);
        proptest::prop_assert_eq!(routed_canon, routed(&raw));
    }

    #[test]
    fn canonical_is_idempotent_and_clean(raw in "/[a-z_/.%0-9A-F\\PC]{0,40}") {
        let once = canonical(&raw).unwrap().into_owned();
        let twice = canonical(&once).unwrap().into_owned();
        proptest::prop_assert_eq!(&once, &twice);
        proptest::prop_assert!(once.starts_with('/'));
        proptest::prop_assert!(!once.contains("//"));
        proptest::prop_assert!(once.bytes().all(|b| b.is_ascii_graphic()));
        for segment in once.split('/') {
            proptest::prop_assert!(segment != "." && segment != "..");
        }
        proptest::prop_assert!(matches!(canonical(&once).unwrap(), Cow::Borrowed(_)));
    }
}
