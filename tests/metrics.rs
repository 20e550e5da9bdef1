//! The Prometheus listener over a real server: a whole sign-in, a rate-limited request, a bad
//! link and a sign-out, then one scrape of `metrics.bind` that must count each of them. Its own
//! test binary: the `metrics` facade has one recorder per process.

use std::collections::BTreeMap;

use system_tests::{cookie_header, keep_cookies, RunningServer};
use xtask::wiring::Parts;

/// The value of the sample of `name` whose labels include `labels`, if the text has one.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let matches = metric == name && labels.iter().all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")));
        matches.then(|| value.parse().ok()).flatten()
    })
}

async fn scrape(port: u16) -> String {
    let response =
        reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.expect("the metrics listener answers");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().await.expect("text")
}

/// A server with its metrics listener on a port of its own, the address limit's one-minute gap
/// on, and a client that does not follow redirects.
async fn server_with_metrics() -> (RunningServer, u16, reqwest::Client) {
    let server = RunningServer::start_with(
        |s| {
            // Port 0: the listener picks a free one, read back below.
            s.metrics.bind = "127.0.0.1:0".to_owned();
            s.rate_limit.address_min_gap = 60;
        },
        Parts::default(),
    )
    .await;
    let port = server.metrics_address.expect("the metrics listener is bound").port();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    (server, port, http)
}

/// A CSRF token and the cookie jar that holds its cookie.
async fn csrf(http: &reqwest::Client, base: &str) -> (BTreeMap<String, String>, String) {
    let mut jar = BTreeMap::new();
    let csrf = http.get(format!("{base}/api/auth/csrf")).send().await.expect("csrf");
    keep_cookies(&mut jar, csrf.headers());
    let token = csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();
    (jar, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_requests_sign_ins_limits_sessions_and_emails() {
    let (server, port, http) = server_with_metrics().await;
    let base = &server.base_url;

    let session = server.sign_in_over_http("counted@example.com").await;
    // A second link to the same address within the minute: refused by the address limit.
    let (jar, token) = csrf(&http, base).await;
    let limited = http
        .post(format!("{base}/api/auth/signin/email"))
        .header("cookie", cookie_header(&jar))
        .form(&[("email", "counted@example.com"), ("csrfToken", token.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(limited.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let bad_link = http.get(format!("{base}/api/auth/callback/email?token=nope&email=a%40example.com")).send().await;
    assert_eq!(bad_link.expect("answers").status(), reqwest::StatusCode::SEE_OTHER);
    let nowhere = http.get(format!("{base}/no/such/page/12345")).send().await.expect("answers");
    assert_eq!(nowhere.status(), reqwest::StatusCode::NOT_FOUND);
    let signed_out = http
        .post(format!("{base}/api/auth/signout"))
        .header("cookie", format!("{}; {session}", cookie_header(&jar)))
        .form(&[("csrfToken", token.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(signed_out.status(), reqwest::StatusCode::SEE_OTHER);
    let on_the_service_port = http.get(format!("{base}/metrics")).send().await.expect("answers");

    // The worker counts a batch just after the mailer took it: wait for that count to appear.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut text = scrape(port).await;
    while sample(&text, "magiclink_emails_total", &[("outcome", "sent")]).is_none()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = scrape(port).await;
    }

    assert_eq!(on_the_service_port.status(), reqwest::StatusCode::NOT_FOUND, "metrics only on their own listener");
    let count = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    };
    assert_eq!(
        count(
            "magiclink_http_requests_total",
            &[("route", "/api/auth/signin/email"), ("method", "POST"), ("status", "303")]
        ),
        1.0
    );
    assert_eq!(count("magiclink_http_requests_total", &[("route", "/api/auth/signin/email"), ("status", "429")]), 1.0);
    // `/no/such/page/12345` and `/metrics` on the service's port: one label for any path.
    assert_eq!(count("magiclink_http_requests_total", &[("route", "unmatched"), ("status", "404")]), 2.0);
    assert!(
        count("magiclink_http_request_duration_seconds_bucket", &[("route", "/api/auth/csrf"), ("le", "+Inf")]) >= 2.0
    );
    assert_eq!(count("magiclink_links_requested_total", &[]), 1.0);
    assert_eq!(count("magiclink_rate_limited_total", &[("limit", "rate-limited-address")]), 1.0);
    assert_eq!(count("magiclink_sign_ins_total", &[("outcome", "signed-in")]), 1.0);
    assert_eq!(count("magiclink_sign_ins_total", &[("outcome", "link-invalid")]), 1.0);
    assert_eq!(count("magiclink_sessions_created_total", &[]), 1.0);
    assert_eq!(count("magiclink_sessions_revoked_total", &[("how", "sign-out")]), 1.0);
    assert_eq!(count("magiclink_emails_total", &[("outcome", "sent")]), 1.0);
    assert_eq!(count("magiclink_outbox_pending", &[]), 0.0);
    assert_eq!(count("magiclink_outbox_oldest_pending_age_seconds", &[]), 0.0);
    assert!(count("magiclink_db_connections_max", &[]) >= 1.0);
    assert!(!text.contains("counted@example.com"), "no address in any label");

    // The account page answers a rate-limited change of address itself (the form again, with
    // the message), not through the error mapping: it is counted all the same. (In this test,
    // not one of its own: the recorder, and so every count, is shared by the whole process.)
    let mover = server.sign_in_over_http("mover@example.com").await;
    let change = || {
        http.post(format!("{base}/account/email"))
            .header("cookie", format!("{}; {mover}", cookie_header(&jar)))
            .form(&[("email", "moved@example.com"), ("csrfToken", token.as_str())])
            .send()
    };
    let first = change().await.expect("answers");
    let second = change().await.expect("answers");
    // The JSON API's routes, reached by their own paths and by a form route's JSON body, are
    // labelled by their patterns too.
    let read = http.get(format!("{base}/api/auth/session")).header("cookie", mover.as_str()).send().await;
    assert_eq!(read.expect("answers").status(), reqwest::StatusCode::OK);
    let revoke_unknown = http
        .delete(format!("{base}/api/auth/sessions/no-such-session"))
        .header("cookie", format!("{}; {mover}", cookie_header(&jar)))
        .header("x-csrf-token", token.as_str())
        .send()
        .await;
    assert_eq!(revoke_unknown.expect("answers").status(), reqwest::StatusCode::NOT_FOUND);
    let by_json = http
        .post(format!("{base}/api/auth/signin/email"))
        .header("cookie", cookie_header(&jar))
        .header("x-csrf-token", token.as_str())
        .json(&serde_json::json!({ "email": "json@example.com" }))
        .send()
        .await;
    assert_eq!(by_json.expect("answers").status(), reqwest::StatusCode::OK);
    let text = scrape(port).await;

    assert_eq!(first.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(second.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        sample(&text, "magiclink_rate_limited_total", &[("limit", "rate-limited-address")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "magiclink_http_requests_total", &[("route", "/account/email"), ("status", "429")]),
        Some(1.0),
        "{text}"
    );
    for (route, method, status) in [
        ("/api/auth/session", "GET", "200"),
        ("/api/auth/sessions/:param0", "DELETE", "404"),
        ("/api/auth/signin/email", "POST", "200"),
    ] {
        assert_eq!(
            sample(&text, "magiclink_http_requests_total", &[("route", route), ("method", method), ("status", status)]),
            Some(1.0),
            "{route} {method} {status} in:\n{text}"
        );
    }
}
