//! The client's address and scheme behind reverse proxies the operator trusts.
//!
//! The TCP peer is the client unless it is one of the trusted proxies
//! (`ServiceConfig::trusted_proxies`, CIDRs). Only then are `X-Forwarded-For` and
//! `Forwarded` (RFC 7239, its `for=` parameter) read, from the right: every entry that
//! is itself a trusted proxy is a hop to walk past, and the first one that is not is the
//! client. The entries further left were written by that client, or by proxies we know
//! nothing of, so they are never believed.
//!
//! - An entry that names no address (`for=unknown`, an obfuscated `for=_hidden`, an
//!   element without `for=`, anything that does not parse) ends the walk: the client is
//!   the last trusted hop's address, the nearest one we can vouch for.
//! - When every entry is a trusted proxy, the left-most one is the client.
//! - All instances of a header count, in order, each a comma-separated list.
//! - When a request carries both headers and they name different clients, neither is
//!   believed: the client is the TCP peer (the proxy). A proxy appends to one of them;
//!   the other passes through from the client as sent, so either could be the forgery.
//!   Configure each proxy to set one and drop the other.
//!
//! `X-Forwarded-Proto` is believed only from a trusted peer, like the addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::http::HeaderMap;
use ipnet::{IpNet, Ipv4Net};

/// The reverse proxies whose forwarding headers are believed. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
}

/// One hop of a forwarding header, as far as we can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    /// It names this address.
    Addr(IpAddr),
    /// `unknown`, obfuscated, absent or unreadable.
    Unknown,
}

impl TrustedProxies {
    /// Trusts the peers inside `nets`. IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`)
    /// mean their IPv4 network, as addresses are compared in their IPv4 form.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let nets: Vec<IpNet> = nets.into_iter().map(canonical_net).collect();
        Self { nets: nets.into() }
    }

    /// Trusts nobody: the client is always the TCP peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The trusted networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the TCP `peer` unless it is a trusted proxy, else what the
    /// forwarding headers say (see the module documentation). IPv4-mapped IPv6 addresses
    /// come back as IPv4. Without a peer (no connect info), `None`: nothing can vouch for
    /// the headers.
    pub fn client_address(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let xff = headers
            .contains_key("x-forwarded-for")
            .then(|| self.walk(peer, &x_forwarded_for(headers)));
        let fwd = headers
            .contains_key("forwarded")
            .then(|| self.walk(peer, &forwarded_for(headers)));
        Some(match (xff, fwd) {
            (None, None) => peer,
            (Some(one), None) | (None, Some(one)) => one,
            (Some(a), Some(b)) if a == b => a,
            (Some(_), Some(_)) => peer,
        })
    }

    /// Whether a trusted proxy says the client reached it over HTTPS: the TCP `peer` is
    /// trusted and the last `X-Forwarded-Proto` entry (the nearest proxy's) is `https`.
    pub fn forwarded_https(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|p| self.contains(p))
            && headers
                .get_all("x-forwarded-proto")
                .iter()
                .map(|v| v.to_str().unwrap_or_default())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|p| !p.is_empty())
                .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }

    /// From the right, past trusted hops, to the first untrusted address; the last
    /// trusted address when an entry names none or every entry is trusted.
    fn walk(&self, peer: IpAddr, hops: &[Hop]) -> IpAddr {
        let mut last_trusted = peer;
        for hop in hops.iter().rev() {
            match *hop {
                Hop::Addr(ip) if self.contains(ip) => last_trusted = ip,
                Hop::Addr(ip) => return ip,
                Hop::Unknown => return last_trusted,
            }
        }
        last_trusted
    }
}

/// An IPv4-mapped IPv6 network of prefix 96 or more as the IPv4 network it maps.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && let Some(prefix) = v6.prefix_len().checked_sub(96)
        && let Ok(v4net) = Ipv4Net::new(v4, prefix)
    {
        return IpNet::V4(v4net);
    }
    net
}

/// The entries of every `X-Forwarded-For` header, left to right. An empty list element
/// is skipped (HTTP list syntax); a header that is not visible ASCII is one unknown hop.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            hops.push(Hop::Unknown);
            continue;
        };
        for entry in split_outside_quotes(value, b',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            hops.push(match unquote(entry) {
                Some(node) => parse_node(&node),
                None => Hop::Unknown,
            });
        }
    }
    hops
}

/// The `for=` of each element of every `Forwarded` header (RFC 7239), left to right. An
/// element without exactly one `for`, or one that does not parse, is an unknown hop.
fn forwarded_for(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(value) = value.to_str() else {
            hops.push(Hop::Unknown);
            continue;
        };
        for element in split_outside_quotes(value, b',') {
            if element.trim().is_empty() {
                continue;
            }
            hops.push(element_for(element));
        }
    }
    hops
}

/// The hop one `Forwarded` element names in its `for` parameter.
fn element_for(element: &str) -> Hop {
    let mut found = None;
    for pair in split_outside_quotes(element, b';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Hop::Unknown;
        };
        if !key.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        if found.is_some() {
            // Twice in one element: which one is meant is anyone's guess.
            return Hop::Unknown;
        }
        found = Some(match unquote(value.trim()) {
            Some(node) => parse_node(&node),
            None => Hop::Unknown,
        });
    }
    found.unwrap_or(Hop::Unknown)
}

/// `s` split at `sep` where it is not inside a quoted string (a backslash escapes the next
/// character inside quotes).
fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            parts.push(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    parts.push(s.get(start..).unwrap_or_default());
    parts
}

/// A token as is, or a quoted string's content with its escapes resolved; `None` for a
/// quoted string that is not closed where the value ends.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"')).then(|| value.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.next().is_none().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// An RFC 7239 node (or an `X-Forwarded-For` entry): `1.2.3.4`, `1.2.3.4:5678`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`; a port may be obfuscated
/// (`_abc`). Anything else (`unknown`, `_hidden`, a name) names no address.
fn parse_node(node: &str) -> Hop {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Hop::Addr(ip.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Hop::Unknown;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return match inside.parse::<Ipv6Addr>() {
            Ok(ip) if port_ok => Hop::Addr(IpAddr::V6(ip).to_canonical()),
            _ => Hop::Unknown,
        };
    }
    match node.split_once(':') {
        Some((host, port)) if is_port(port) => match host.parse::<Ipv4Addr>() {
            Ok(ip) => Hop::Addr(IpAddr::V4(ip)),
            Err(_) => Hop::Unknown,
        },
        _ => Hop::Unknown,
    }
}

/// A port number, or an obfuscated port (`_` then letters, digits, `.`, `_`, `-`).
fn is_port(port: &str) -> bool {
    if let Some(obfuscated) = port.strip_prefix('_') {
        return !obfuscated.is_empty()
            && obfuscated
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    }
    port.parse::<u16>().is_ok() && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse::<IpNet>().unwrap()))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nodes_parse_with_and_without_ports() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            ("1.2.3.4", Some("1.2.3.4")),
            (" 1.2.3.4 ", Some("1.2.3.4")),
            ("1.2.3.4:5678", Some("1.2.3.4")),
            ("1.2.3.4:_obf", Some("1.2.3.4")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("[2001:db8::1]:_p-1", Some("2001:db8::1")),
            ("::ffff:192.0.2.7", Some("192.0.2.7")),
            ("[::ffff:192.0.2.7]:80", Some("192.0.2.7")),
            ("unknown", None),
            ("_hidden", None),
            ("_", None),
            ("example.com", None),
            ("example.com:80", None),
            ("1.2.3.4:", None),
            ("1.2.3.4:99999", None),
            ("1.2.3.4:+80", None),
            ("1.2.3.4:_", None),
            ("1.2.3", None),
            ("[2001:db8::1", None),
            ("[2001:db8::1]443", None),
            ("[1.2.3.4]:80", None),
            ("fe80::1%eth0", None),
            ("", None),
        ];
        for (node, want) in cases {
            let want = want.map_or(Hop::Unknown, |w| Hop::Addr(ip(w)));
            assert_eq!(parse_node(node), want, "{node:?}");
        }
    }

    #[test]
    fn quoted_values_unquote() {
        assert_eq!(unquote("abc").as_deref(), Some("abc"));
        assert_eq!(unquote(r#""[::1]:80""#).as_deref(), Some("[::1]:80"));
        assert_eq!(unquote(r#""a\"b""#).as_deref(), Some("a\"b"));
        assert_eq!(unquote(r#""open"#), None);
        assert_eq!(unquote(r#""a"b"#), None);
        assert_eq!(unquote(r#"a"b"#), None);
    }

    /// One row: trusted networks, TCP peer, headers, the client we expect.
    type Case<'a> = (
        &'a [&'a str],
        &'a str,
        &'a [(&'static str, &'a str)],
        &'a str,
    );

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let lo: &[&str] = &["127.0.0.1/32", "::1/128"];
        let lan: &[&str] = &["10.0.0.0/8", "127.0.0.1/32"];
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // No trusted proxy: headers are never read.
            (&[], "203.0.113.9", &[("x-forwarded-for", "1.1.1.1")], "203.0.113.9"),
            (&[], "127.0.0.1", &[("forwarded", "for=1.1.1.1")], "127.0.0.1"),
            // An untrusted peer: its headers are ignored.
            (lo, "127.0.0.4", &[("x-forwarded-for", "1.1.1.1")], "127.0.0.4"),
            (lo, "203.0.113.9", &[("forwarded", "for=1.1.1.1")], "203.0.113.9"),
            // A trusted peer without headers is the client.
            (lo, "127.0.0.1", &[], "127.0.0.1"),
            // The right-most untrusted entry wins; what the client wrote to its left is not believed.
            (lo, "127.0.0.1", &[("x-forwarded-for", "6.6.6.6, 127.0.0.2")], "127.0.0.2"),
            (lo, "127.0.0.1", &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "127.0.0.2")], "127.0.0.2"),
            (lan, "10.0.0.1", &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")], "198.51.100.7"),
            (lan, "10.0.0.1", &[("x-forwarded-for", "198.51.100.7:5555,10.1.2.3:80")], "198.51.100.7"),
            (lan, "10.0.0.1", &[("x-forwarded-for", "\"[2001:db8::7]:443\", 10.1.2.3")], "2001:db8::7"),
            (lan, "10.0.0.1", &[("x-forwarded-for", "2001:db8::7")], "2001:db8::7"),
            (lan, "10.0.0.1", &[("x-forwarded-for", "198.51.100.7,,")], "198.51.100.7"),
            // Every entry trusted: the left-most is the client.
            (lan, "10.0.0.1", &[("x-forwarded-for", "10.9.9.9, 10.1.2.3")], "10.9.9.9"),
            // Unknown or unparseable: the last trusted hop.
            (lan, "10.0.0.1", &[("x-forwarded-for", "6.6.6.6, unknown, 10.1.2.3")], "10.1.2.3"),
            (lan, "10.0.0.1", &[("x-forwarded-for", "6.6.6.6, garbage")], "10.0.0.1"),
            (lan, "10.0.0.1", &[("x-forwarded-for", "6.6.6.6, 1.2.3.4:99999")], "10.0.0.1"),
            // RFC 7239.
            (lo, "127.0.0.1", &[("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")], "192.0.2.60"),
            (lo, "127.0.0.1", &[("forwarded", "For=\"[2001:db8:cafe::17]:4711\"")], "2001:db8:cafe::17"),
            (lo, "127.0.0.1", &[("forwarded", "for=6.6.6.6, for=192.0.2.43")], "192.0.2.43"),
            (lo, "127.0.0.1", &[("forwarded", "for=6.6.6.6"), ("forwarded", "for=192.0.2.43;proto=http")], "192.0.2.43"),
            (lan, "10.0.0.1", &[("forwarded", "for=192.0.2.43, for=10.3.3.3;by=\"a,b;c\"")], "192.0.2.43"),
            (lan, "10.0.0.1", &[("forwarded", "for=192.0.2.43, for=unknown, for=10.3.3.3")], "10.3.3.3"),
            (lan, "10.0.0.1", &[("forwarded", "for=192.0.2.43, for=_hidden")], "10.0.0.1"),
            (lan, "10.0.0.1", &[("forwarded", "for=192.0.2.43, proto=https")], "10.0.0.1"),
            (lan, "10.0.0.1", &[("forwarded", "for=192.0.2.43, for=1.1.1.1;for=2.2.2.2")], "10.0.0.1"),
            (lan, "10.0.0.1", &[("forwarded", "for=\"192.0.2.43")], "10.0.0.1"),
            (lan, "10.0.0.1", &[("forwarded", "for=10.4.4.4, for=10.3.3.3")], "10.4.4.4"),
            // Both headers: believed when they agree, else the peer.
            (lo, "127.0.0.1", &[("x-forwarded-for", "192.0.2.1"), ("forwarded", "for=192.0.2.1")], "192.0.2.1"),
            (lo, "127.0.0.1", &[("x-forwarded-for", "192.0.2.1"), ("forwarded", "for=6.6.6.6")], "127.0.0.1"),
            // IPv4-mapped peers and entries are IPv4.
            (lo, "::ffff:127.0.0.1", &[("x-forwarded-for", "::ffff:192.0.2.5")], "192.0.2.5"),
            (&["::ffff:127.0.0.0/104"], "127.0.0.1", &[("x-forwarded-for", "192.0.2.5")], "192.0.2.5"),
            (lo, "::1", &[("x-forwarded-for", "2001:db8::5, ::1")], "2001:db8::5"),
        ];
        for (nets, peer, hdrs, want) in cases {
            let got = proxies(nets).client_address(&headers(hdrs), Some(ip(peer)));
            assert_eq!(
                got,
                Some(ip(want)),
                "trusted {nets:?}, peer {peer}, {hdrs:?}"
            );
        }
    }

    #[test]
    fn headers_that_are_not_text_name_no_one() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap(),
        );
        let p = proxies(&["127.0.0.1/32"]);
        assert_eq!(
            p.client_address(&h, Some(ip("127.0.0.1"))),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn without_a_peer_there_is_no_client_address() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(proxies(&["0.0.0.0/0"]).client_address(&h, None), None);
    }

    #[test]
    fn https_is_believed_from_a_trusted_peer_only() {
        let p = proxies(&["127.0.0.1/32"]);
        let https = headers(&[("x-forwarded-proto", "https")]);
        assert!(p.forwarded_https(&https, Some(ip("127.0.0.1"))));
        assert!(!p.forwarded_https(&https, Some(ip("127.0.0.4"))));
        assert!(!p.forwarded_https(&https, None));
        assert!(!TrustedProxies::none().forwarded_https(&https, Some(ip("127.0.0.1"))));
        let nearest_says_http = headers(&[("x-forwarded-proto", "https, http")]);
        assert!(!p.forwarded_https(&nearest_says_http, Some(ip("127.0.0.1"))));
        let upper = headers(&[("x-forwarded-proto", "HTTPS")]);
        assert!(p.forwarded_https(&upper, Some(ip("127.0.0.1"))));
        assert!(!p.forwarded_https(&HeaderMap::new(), Some(ip("127.0.0.1"))));
    }
}
