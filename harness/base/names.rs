//! Node names as people read them.

/// The short name of a full node name (`quorum-1` of `quorum-1.cell-1.dc-1.demo.lan`); an
/// address is left whole.
pub fn short(fqdn: &str) -> &str {
    if fqdn.parse::<std::net::IpAddr>().is_ok() {
        return fqdn;
    }
    fqdn.split('.').next().unwrap_or(fqdn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_shorten_and_addresses_do_not() {
        assert_eq!(short("quorum-1.cell-1.dc-1.demo.lan"), "quorum-1");
        assert_eq!(short("quorum-1"), "quorum-1");
        assert_eq!(short("10.0.0.8"), "10.0.0.8");
    }
}
