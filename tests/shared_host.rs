//! The deployment guide's nginx configuration for magiclink sharing a host name with an app
//! (`docs/integration/nginx-shared-host.conf`), held to magiclink's own route table: its
//! locations are the ones the table derives, and every route magiclink serves, requested
//! through a real nginx running the file, reaches magiclink, while `/` and the app's own paths
//! reach the app.

use std::path::Path;

use system_tests::nginx::{self, Nginx};
use system_tests::RunningServer;
use web::routes::{proxied_locations, served_routes, ProxiedLocation};
use xtask::wiring::Parts;

fn snippet() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/integration/nginx-shared-host.conf"))
        .expect("docs/integration/nginx-shared-host.conf")
}

/// The snippet's locations that send requests to magiclink, in order.
fn locations_sent_to_magiclink(conf: &str) -> Vec<ProxiedLocation> {
    conf.lines()
        .map(str::trim)
        .filter(|line| line.starts_with("location ") && line.contains("http://magiclink"))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[1] {
                "=" => ProxiedLocation::Exact(words[2].to_owned()),
                prefix => ProxiedLocation::Prefix(prefix.to_owned()),
            }
        })
        .collect()
}

/// The web settings of the default configuration: the paths the snippet is written for.
fn default_paths() -> web::WebSettings {
    let settings = xtask::settings::Settings::default();
    let secrets = domain::SecretRing::single(domain::ServerSecret::new(*b"shared-host-test-secret-shared-h"));
    xtask::wiring::web_settings(&settings, &url::Url::parse("https://app.example.com").expect("a URL"), &secrets)
}

#[test]
fn the_shared_host_snippet_sends_magiclink_exactly_the_locations_its_route_table_derives() {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deployment.md"))
        .expect("docs/deployment.md");
    let derived = proxied_locations(&default_paths());

    assert_eq!(locations_sent_to_magiclink(&snippet()), derived);
    assert!(
        guide.contains(&snippet()),
        "docs/deployment.md must show docs/integration/nginx-shared-host.conf as it is"
    );
    for route in served_routes(&default_paths(), false).iter().filter(|route| route.path != "/") {
        assert!(derived.iter().any(|location| location.covers(&route.path)), "{} is not proxied", route.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_magiclink_serves_reaches_it_through_the_shared_host_snippet() {
    let reserved = nginx::reserve_port();
    let port = reserved.port;
    let public = format!("http://127.0.0.1:{port}");
    let server = RunningServer::start_with(move |s| s.server.base_url = public, Parts::default()).await;
    let app = nginx::start_upstream().await;
    let conf = snippet()
        .replace("127.0.0.1:3000", &server.bound_address)
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{app}"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port} reuseport;"));
    let Some(proxy) = Nginx::start(port, &conf) else { return };
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    // Every response of magiclink's carries a request id; the app's never does.
    let reaches_magiclink = |reply: &reqwest::Response| reply.headers().contains_key("x-request-id");

    let mut requests: Vec<(String, String)> = served_routes(&default_paths(), false)
        .into_iter()
        .filter(|route| route.path != "/")
        .map(|route| (route.methods.split(", ").next().unwrap_or("GET").to_owned(), route.path))
        .collect();
    // The JSON API and its documents, nested under the base path.
    for path in ["/api/auth/session", "/api/auth/sessions", "/api/auth/openapi.json", "/api/auth/docs"] {
        requests.push(("GET".to_owned(), path.to_owned()));
    }
    for (method, path) in &requests {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let reply = http.request(method.clone(), format!("{}{path}", proxy.origin)).send().await.expect("answers");
        assert!(reaches_magiclink(&reply), "{method} {path} reached the app, not magiclink");
    }
    for path in ["/", "/dashboard", "/accounting", "/signin-help", "/api/other"] {
        let reply = http.get(format!("{}{path}", proxy.origin)).send().await.expect("answers");
        assert!(!reaches_magiclink(&reply), "{path} reached magiclink, not the app");
        assert_eq!(reply.text().await.expect("body"), "hello nobody", "{path}");
    }
}
