use super::*;

const TAG: &str = "<script src=\"/_idlegate/client.js?v=1\" defer></script>";

#[test]
fn tag_goes_first_in_head_before_the_app_scripts() {
    let page = b"<!doctype html><html><head><script>window.prerenderReady = false</script>\
        <script type=\"module\" src=\"./static/js/index.js\"></script></head><body></body></html>";
    let out = String::from_utf8(add_tag(page, TAG).unwrap()).unwrap();
    assert_eq!(
        out,
        format!(
            "<!doctype html><html><head>{TAG}<script>window.prerenderReady = false</script>\
             <script type=\"module\" src=\"./static/js/index.js\"></script></head><body></body></html>"
        )
    );
}

#[test]
fn page_without_head_gets_it_in_body_and_only_once() {
    let out = String::from_utf8(add_tag(b"<body><p>hi</p></body>", TAG).unwrap()).unwrap();
    assert_eq!(out, format!("<body>{TAG}<p>hi</p></body>"));
    let out = add_tag(b"<head></head><body></body>", TAG).unwrap();
    assert_eq!(String::from_utf8(out).unwrap().matches(TAG).count(), 1);
    assert_eq!(add_tag(b"just text", TAG), None);
}

#[test]
fn navigations_are_recognized() {
    let nav = |method: Method, headers: &[(&'static str, &str)]| {
        let mut req = Request::builder().method(method).uri("/");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        is_navigation(&req.body(()).unwrap())
    };
    assert!(nav(Method::GET, &[("sec-fetch-dest", "document")]));
    assert!(nav(Method::GET, &[("sec-fetch-dest", "iframe")]));
    assert!(nav(Method::HEAD, &[("accept", "text/html,*/*")]));
    assert!(!nav(
        Method::GET,
        &[("sec-fetch-dest", "script"), ("accept", "text/html")]
    ));
    assert!(!nav(Method::GET, &[("accept", "*/*")]));
    assert!(!nav(Method::POST, &[("sec-fetch-dest", "document")]));
}

#[test]
fn etags_carry_the_script_version_both_ways() {
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, HeaderValue::from_static("W/\"abc\""));
    mark_etag(&mut headers, "v1");
    assert_eq!(headers[ETAG], "W/\"abc-igv1\"");

    let mut request = HeaderMap::new();
    request.insert(
        IF_NONE_MATCH,
        HeaderValue::from_static("W/\"abc-igv1\", \"x-igv0\""),
    );
    prepare_request(&mut request, "v1");
    assert_eq!(request[IF_NONE_MATCH], "W/\"abc\"");
    assert_eq!(request[ACCEPT_ENCODING], "identity");

    // A tag from an older script version must not produce a 304.
    let mut request = HeaderMap::new();
    request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"abc-igv0\""));
    prepare_request(&mut request, "v1");
    assert!(request.get(IF_NONE_MATCH).is_none());
}

#[tokio::test]
async fn compressed_pages_are_decoded() {
    use async_compression::tokio::bufread::GzipEncoder;
    let page = b"<html><head></head><body>hello</body></html>";
    let mut gz = Vec::new();
    GzipEncoder::new(&page[..])
        .read_to_end(&mut gz)
        .await
        .unwrap();
    assert_eq!(Encoding::Gzip.decode(&gz).await.unwrap(), page);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    assert_eq!(Encoding::of(&headers), None);
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("GZIP"));
    assert_eq!(Encoding::of(&headers), Some(Encoding::Gzip));
}

#[tokio::test]
async fn decompression_bombs_are_refused() {
    use async_compression::tokio::bufread::GzipEncoder;
    let zeros = vec![0u8; MAX_PAGE_BYTES + 10];
    let mut gz = Vec::new();
    GzipEncoder::new(&zeros[..])
        .read_to_end(&mut gz)
        .await
        .unwrap();
    assert!(Encoding::Gzip.decode(&gz).await.is_err());
}

#[test]
fn the_same_page_is_rewritten_once() {
    let injector = Injector::new(
        TAG,
        "v1",
        Limits::new(&crate::Config::builder().build().unwrap()),
    );
    let page = Bytes::from_static(b"<html><head></head><body></body></html>");
    let first = injector.add_tag_cached(&page).unwrap();
    let again = injector.add_tag_cached(&page.clone()).unwrap();
    assert_eq!(first, again);
    // Same bytes, not merely the same length: a different page is rewritten afresh.
    let other = Bytes::from_static(b"<html><head></head><body>x</body></html>");
    assert_ne!(injector.add_tag_cached(&other).unwrap(), first);
    for i in 0..20 {
        let page = Bytes::from(format!("<html><head></head><body>{i}</body></html>"));
        assert!(injector.add_tag_cached(&page).is_some());
    }
    assert_eq!(injector.recent.lock().unwrap().len(), CACHE_ENTRIES);
}

#[test]
fn a_new_script_replaces_the_tag_and_the_remembered_pages() {
    let injector = Injector::new(
        TAG,
        "v1",
        Limits::new(&crate::Config::builder().build().unwrap()),
    );
    let page = Bytes::from_static(b"<html><head></head><body></body></html>");
    let old = injector.add_tag_cached(&page).unwrap();
    let tag = "<script src=\"/_idlegate/client.js?v=v2\" defer></script>";
    injector.set_script(tag, "v2");
    assert_eq!(injector.version(), "v2");
    let new = injector.add_tag_cached(&page).unwrap();
    assert_ne!(new, old);
    assert!(String::from_utf8_lossy(&new).contains(tag));
}

#[test]
fn html_answers_vary_on_what_decides_the_rewrite() {
    let html = |extra: Option<&str>| {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Some(v) = extra {
            headers.insert(VARY, HeaderValue::from_str(v).unwrap());
        }
        headers
    };
    let vary_of = |headers: &HeaderMap| headers.get(VARY).map(|v| v.to_str().unwrap().to_owned());
    let mut headers = html(None);
    vary(&Method::GET, StatusCode::OK, &mut headers);
    assert_eq!(vary_of(&headers).as_deref(), Some("Sec-Fetch-Dest, Accept"));
    // Twice changes nothing; the app's own names are kept.
    vary(&Method::GET, StatusCode::OK, &mut headers);
    assert_eq!(vary_of(&headers).as_deref(), Some("Sec-Fetch-Dest, Accept"));
    let mut headers = html(Some("Accept-Encoding, accept"));
    vary(&Method::HEAD, StatusCode::OK, &mut headers);
    assert_eq!(
        vary_of(&headers).as_deref(),
        Some("Accept-Encoding, accept, Sec-Fetch-Dest")
    );
    let mut headers = html(Some("*"));
    vary(&Method::GET, StatusCode::OK, &mut headers);
    assert_eq!(vary_of(&headers).as_deref(), Some("*"));
    // A 304 carries the page's Vary; a POST answer and a script are never rewritten.
    let mut headers = HeaderMap::new();
    vary(&Method::GET, StatusCode::NOT_MODIFIED, &mut headers);
    assert_eq!(vary_of(&headers).as_deref(), Some("Sec-Fetch-Dest, Accept"));
    let mut headers = html(None);
    vary(&Method::POST, StatusCode::OK, &mut headers);
    assert_eq!(vary_of(&headers), None);
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/javascript"),
    );
    vary(&Method::GET, StatusCode::OK, &mut headers);
    assert_eq!(vary_of(&headers), None);
}
