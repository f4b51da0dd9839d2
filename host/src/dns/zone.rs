//! An authoritative DNS server on loopback that serves a zone file: how
//! Postern answers DNS offline (demos, tests, checking saved mail) through
//! the very same resolver path it uses online.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::SOA;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

use super::DnsError;

/// Parses a zone file (RFC 1035 master-file syntax: `$ORIGIN`, `$TTL`,
/// absolute or relative names; no SOA needed) into its records.
pub fn parse_zone(text: &str, path: Option<&Path>) -> Result<BTreeMap<RrKey, RecordSet>, DnsError> {
    let parser = Parser::new(text, path.map(Path::to_path_buf), Some(Name::root()));
    let (_, records) = parser.parse().map_err(|e| DnsError::Zone(e.to_string()))?;
    Ok(records)
}

/// A running zone server; stops when dropped.
pub struct ZoneServer {
    addr: SocketAddr,
    server: Server<Catalog>,
}

impl std::fmt::Debug for ZoneServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneServer").field("addr", &self.addr).finish()
    }
}

impl ZoneServer {
    /// Serves `records` as the authority for every name, on 127.0.0.1 (UDP
    /// and TCP, same ephemeral port): a name the zone does not hold is
    /// NXDOMAIN. Must run inside a tokio runtime.
    pub async fn start(mut records: BTreeMap<RrKey, RecordSet>) -> Result<Self, DnsError> {
        let root = Name::root();
        let soa_key = RrKey::new(LowerName::from(&root), RecordType::SOA);
        records.entry(soa_key).or_insert_with(|| {
            let soa = SOA::new(Name::root(), Name::root(), 1, 3600, 600, 86400, 60);
            RecordSet::from(Record::from_rdata(root.clone(), 60, RData::SOA(soa)))
        });
        let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
            root.clone(),
            records,
            ZoneType::Primary,
            AxfrPolicy::Deny,
        )
        .map_err(DnsError::Zone)?;
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::from(&root), vec![Arc::new(handler) as Arc<dyn ZoneHandler>]);

        let udp = UdpSocket::bind("127.0.0.1:0").await.map_err(DnsError::Io)?;
        let addr = udp.local_addr().map_err(DnsError::Io)?;
        // TCP on the same port, for truncated answers (large TXT records).
        let tcp = TcpListener::bind(addr).await.map_err(DnsError::Io)?;
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
        Ok(ZoneServer { addr, server })
    }

    /// Parses a zone file and serves it.
    pub async fn from_file(path: &Path) -> Result<Self, DnsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DnsError::Zone(format!("cannot read zone file {}: {e}", path.display())))?;
        let records =
            parse_zone(&text, Some(path)).map_err(|e| DnsError::Zone(format!("zone file {}: {e}", path.display())))?;
        Self::start(records).await
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ZoneServer {
    fn drop(&mut self) {
        self.server.shutdown_token().cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_for_several_domains_without_soa() {
        let zone = "$ORIGIN example.test.\n$TTL 300\n@ IN MX 10 mx.example.test.\n@ IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"\nother.test. IN MX 0 .\n";
        let records = parse_zone(zone, None).unwrap();
        let name = |n: &str| LowerName::from(Name::from_ascii(n).unwrap());
        assert!(records.contains_key(&RrKey::new(name("example.test."), RecordType::MX)));
        assert!(records.contains_key(&RrKey::new(name("_dmarc.example.test."), RecordType::TXT)));
        assert!(records.contains_key(&RrKey::new(name("other.test."), RecordType::MX)));
    }

    #[test]
    fn a_broken_zone_is_an_error() {
        assert!(matches!(parse_zone("example.test. IN MX notanumber\n", None), Err(DnsError::Zone(_))));
    }
}
