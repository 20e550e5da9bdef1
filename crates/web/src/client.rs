//! Who the client is: the address rate limits count by.
//!
//! The socket's peer, unless that peer is a reverse proxy the operator trusts
//! (`server.trusted_proxies`); only then is `X-Forwarded-For` read, from the right (the hop
//! nearest us) leftwards, skipping trusted proxies, and the first untrusted address is the
//! client. Anything to its left was written by the client itself and proves nothing, so a
//! spoofed header from an untrusted peer changes nothing.
//!
//! [`request_origin`] is the same client as the audit log records it: its address cut down by
//! `audit.client_address`, its browser in words, and the request's id.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::http::HeaderMap;
use poem::{Addr, Request};

/// The id the request middleware gave this request (`X-Request-Id`), kept in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where this request came from, as the audit log keeps it.
pub fn request_origin(req: &Request, settings: &crate::WebSettings) -> domain::audit::RequestOrigin {
    let user_agent = req.header(poem::http::header::USER_AGENT);
    domain::audit::RequestOrigin {
        client_address: client_ip(req, &settings.trusted_proxies)
            .and_then(|client| settings.audit_client_address.keep(client)),
        user_agent: user_agent.map(|agent| crate::user_agent::describe(Some(agent))),
        request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()),
        lang: Some(crate::lang::of(req)),
    }
}

/// The client's address, or `None` when the connection has no IP peer (in-process tests).
pub fn client_ip(req: &Request, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let Addr::SocketAddr(peer) = req.remote_addr().0 else {
        return None;
    };
    Some(client_behind(peer.ip(), req.headers(), trusted_proxies))
}

/// The client behind a connection from `peer` that sent `headers`.
fn client_behind(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(peer, trusted_proxies) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        // A malformed hop ends the trail: the last good address we reached stands.
        let Ok(address) = hop.parse::<IpAddr>().map(canonical) else {
            break;
        };
        client = address;
        if !is_trusted(address, trusted_proxies) {
            break;
        }
    }
    client
}

fn is_trusted(address: IpAddr, trusted_proxies: &[IpNet]) -> bool {
    trusted_proxies.iter().any(|net| net.contains(&address))
}

/// An IPv4 address mapped into IPv6 (a dual-stack socket) as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};

    use ipnet::IpNet;
    use poem::http::HeaderMap;

    use super::client_behind;

    fn client(peer: &str, forwarded: &[&str], trusted: &[IpNet]) -> IpAddr {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().expect("a header value"));
        }
        let peer: SocketAddr = peer.parse().expect("a socket address");
        client_behind(peer.ip(), &headers, trusted)
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy_and_only_up_to_the_first_untrusted_hop() {
        let trusted = vec!["10.0.0.0/8".parse().expect("net"), "2001:db8::1/128".parse().expect("net")];
        let cases = [
            ("203.0.113.5:1000", vec!["198.51.100.1"], "203.0.113.5", "an untrusted peer's header is ignored"),
            ("10.0.0.2:1000", vec!["198.51.100.1"], "198.51.100.1", "a trusted peer's header is read"),
            ("10.0.0.2:1000", vec!["1.1.1.1, 198.51.100.1, 10.0.0.9"], "198.51.100.1", "trusted hops are skipped"),
            ("10.0.0.2:1000", vec!["1.1.1.1", "198.51.100.1"], "198.51.100.1", "repeated headers read as one list"),
            ("10.0.0.2:1000", vec!["garbage, 198.51.100.1"], "198.51.100.1", "the nearest untrusted hop wins"),
            ("10.0.0.2:1000", vec!["198.51.100.1, garbage"], "10.0.0.2", "a malformed nearest hop ends the trail"),
            ("10.0.0.2:1000", vec![], "10.0.0.2", "no header: the proxy itself"),
            ("10.0.0.2:1000", vec!["10.0.0.3"], "10.0.0.3", "all trusted: the farthest"),
            ("[::ffff:203.0.113.7]:1000", vec![], "203.0.113.7", "IPv4-mapped peers are IPv4"),
            ("[2001:db8::1]:1000", vec!["2001:db8:5::9"], "2001:db8:5::9", "IPv6 proxies"),
        ];
        for (peer, forwarded, expected, why) in cases {
            assert_eq!(client(peer, &forwarded, &trusted).to_string(), expected, "{why}");
        }
    }

    #[test]
    fn with_no_trusted_proxies_the_peer_is_always_the_client() {
        assert_eq!(client("10.0.0.2:1000", &["198.51.100.1"], &[]).to_string(), "10.0.0.2");
    }
}
