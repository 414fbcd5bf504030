//! Fuzzes what the app sees of a request's headers ([`request_headers`]): arbitrary header
//! fields must never panic, and afterwards no hop-by-hop header and no client-sent identity
//! header is left, idlegate's identity headers (when someone is signed in) are its own and
//! single, no idlegate cookie is left, and the other cookies are all there, in order, in one
//! `Cookie` field at most.
//!
//! The first input byte chooses whether someone is signed in; the rest, split at `\n`, is
//! header fields `name: value`.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};
use idlegate::auth::identity::WELL_KNOWN;
use idlegate::auth::Identity;
use idlegate::config::IdentityHeaders;
use idlegate::proxy::outgoing::request_headers;
use idlegate::web::cookies::is_own;
use libfuzzer_sys::fuzz_target;

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn names() -> IdentityHeaders {
    IdentityHeaders {
        user: HeaderName::from_static("x-remote-user"),
        name: HeaderName::from_static("x-forwarded-preferred-username"),
        email: HeaderName::from_static("x-forwarded-email"),
        groups: HeaderName::from_static("x-forwarded-groups"),
    }
}

/// The cookie pairs of every `Cookie` field, trimmed, empty ones dropped.
fn pairs(headers: &HeaderMap) -> Vec<Vec<u8>> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .map(|pair| pair.trim_ascii().to_vec())
        .filter(|pair| !pair.is_empty())
        .collect()
}

fn name(pair: &[u8]) -> &[u8] {
    pair.split(|b| *b == b'=')
        .next()
        .unwrap_or(pair)
        .trim_ascii()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let identity = (choice & 1 == 1).then(|| Identity {
        user: "alice".into(),
        name: (choice & 2 == 2).then(|| "Alice".into()),
        email: (choice & 4 == 4).then(|| "alice@example.com".into()),
        groups: if choice & 8 == 8 {
            vec!["staff".into(), "ops".into()]
        } else {
            Vec::new()
        },
    });
    let expected: Vec<Vec<u8>> = pairs(&headers)
        .into_iter()
        .filter(|pair| !is_own(name(pair)))
        .collect();
    let names = names();
    request_headers(&mut headers, &names, identity.as_ref());

    for hop in HOP_BY_HOP {
        assert!(!headers.contains_key(hop), "{hop} reached the app");
    }
    assert!(
        headers.get_all(COOKIE).iter().count() <= 1,
        "several cookie fields"
    );
    let left = pairs(&headers);
    assert!(
        left.iter().all(|pair| !is_own(name(pair))),
        "an idlegate cookie reached the app"
    );
    assert_eq!(left, expected, "the app's own cookies changed");

    let well_known = WELL_KNOWN;
    let mut identity_names: Vec<&HeaderName> = names.all().to_vec();
    identity_names.extend(well_known.iter());
    for header in identity_names {
        let values: Vec<&HeaderValue> = headers.get_all(header).iter().collect();
        let ours = identity.as_ref().and_then(|id| {
            if *header == names.user {
                Some(id.user.clone())
            } else if *header == names.name {
                Some(id.name.clone().unwrap_or_else(|| id.user.clone()))
            } else if *header == names.email {
                id.email.clone()
            } else if *header == names.groups {
                (!id.groups.is_empty()).then(|| id.groups.join(","))
            } else {
                None
            }
        });
        match ours {
            Some(value) => assert_eq!(values, [value.as_str()], "{header}"),
            None => assert!(values.is_empty(), "the client's {header} reached the app"),
        }
    }
});
