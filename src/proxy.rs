//! Who the client is: the TCP peer's address, or, behind a trusted reverse proxy,
//! the address it names in `X-Forwarded-For` (`server.trusted_proxies`).

use std::net::{IpAddr, SocketAddr};

/// The TCP peer of a connection, put into each request's extensions by the accept
/// loop (warp's own remote-address extension is private to warp's server).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// One trusted network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an address or a CIDR network (e.g. 10.0.0.0/8)");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    fn contains(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(a)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                prefix_eq(u128::from(net), u128::from(a), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    match prefix {
        0 => true,
        p => (a ^ b) >> (128 - u32::from(p)) == 0,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| Network::parse(e))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(addr))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then the
    /// rightmost `X-Forwarded-For` entry that is not a trusted proxy (entries to its
    /// left were written by the client and prove nothing). A malformed entry stops
    /// the walk at the last address known good.
    pub fn client_addr(&self, peer: IpAddr, forwarded_for: Option<&[u8]>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let Some(header) = forwarded_for.and_then(|h| std::str::from_utf8(h).ok()) else {
            return peer;
        };
        let mut client = peer;
        for entry in header.rsplit(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(addr) => {
                    client = canonical(addr);
                    if !self.trusts(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn networks() {
        let proxies =
            TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into(), "192.0.2.7".into()])
                .expect("valid");
        assert!(proxies.trusts(ip("10.200.3.4")));
        assert!(proxies.trusts(ip("::ffff:10.1.1.1")));
        assert!(proxies.trusts(ip("::1")));
        assert!(proxies.trusts(ip("192.0.2.7")));
        assert!(!proxies.trusts(ip("192.0.2.8")));
        assert!(!proxies.trusts(ip("11.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "1.2.3.4/x", ""] {
            assert!(TrustedProxies::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_addr(ip("10.0.0.1"), Some(b"1.2.3.4")),
            ip("10.0.0.1"),
            "no proxy is trusted: the header is ignored"
        );
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).expect("valid");
        let peer = ip("10.0.0.1");
        assert_eq!(proxies.client_addr(peer, None), peer);
        assert_eq!(proxies.client_addr(peer, Some(b"1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(
            proxies.client_addr(peer, Some(b"6.6.6.6, 1.2.3.4, 10.0.0.9")),
            ip("1.2.3.4"),
            "the client's own entries on the left are not believed"
        );
        assert_eq!(
            proxies.client_addr(peer, Some(b"garbage, 10.0.0.9")),
            ip("10.0.0.9")
        );
        assert_eq!(
            proxies.client_addr(ip("8.8.8.8"), Some(b"1.2.3.4")),
            ip("8.8.8.8"),
            "an untrusted peer's header is ignored"
        );
    }
}
