//! DNS for the authentication checks: mail-auth's resolver pointed at the
//! source the config selects (the system resolver, a given nameserver, or a
//! zone file served on loopback), with record caches and a time budget.

pub mod cache;
pub mod zone;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{MX, MessageAuthenticator, Parameters, RecordSet, Txt};

pub use cache::TtlCache;
pub use zone::ZoneServer;

/// Where DNS answers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsSource {
    /// The system's resolver (`/etc/resolv.conf`).
    System,
    /// One nameserver (UDP and TCP).
    Nameserver(SocketAddr),
    /// A zone file, served by an in-process authoritative server on loopback.
    ZoneFile(PathBuf),
    /// Zone text (the embedded default's example zone), served the same way.
    ZoneText(&'static str),
}

/// DNS set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The zone file cannot be read or parsed.
    #[error("{0}")]
    Zone(String),
    /// The resolver cannot be built (no usable system configuration).
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
    /// A socket could not be opened.
    #[error("DNS socket: {0}")]
    Io(std::io::Error),
}

/// Parsed-record caches, one per record type.
pub struct Caches {
    /// TXT records (SPF, DKIM keys, DMARC).
    pub txt: TtlCache<Box<str>, Txt>,
    /// MX records.
    pub mx: TtlCache<Box<str>, RecordSet<MX>>,
    /// A records.
    pub ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    /// AAAA records.
    pub ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    /// PTR records.
    pub ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
}

/// Check parameters with every cache attached.
pub type Cached<'x, P> = Parameters<
    'x,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

impl Caches {
    /// `params` with every cache attached, for mail-auth's verify calls.
    pub fn with<'x, P>(&'x self, params: P) -> Cached<'x, P> {
        Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

impl Default for Caches {
    fn default() -> Self {
        let n = cache::DEFAULT_CAPACITY;
        Caches {
            txt: TtlCache::new(n),
            mx: TtlCache::new(n),
            ipv4: TtlCache::new(n),
            ipv6: TtlCache::new(n),
            ptr: TtlCache::new(n),
        }
    }
}

/// The resolver, its caches, and the zone server behind it when offline.
pub struct Dns {
    /// mail-auth's authenticator (a hickory resolver).
    pub authenticator: MessageAuthenticator,
    /// Parsed-record caches.
    pub caches: Caches,
    /// Budget of one check's lookups; past it the check is a temporary
    /// failure.
    pub timeout: Duration,
    _zone: Option<ZoneServer>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns").field("timeout", &self.timeout).field("zone", &self._zone).finish_non_exhaustive()
    }
}

impl Dns {
    /// Sets up DNS from `source`. Must run inside a tokio runtime (the zone
    /// server and the resolver live on it).
    pub async fn new(source: &DnsSource, timeout: Duration) -> Result<Self, DnsError> {
        let mut opts = ResolverOpts::default();
        // One try per transport within the budget: a dead server must turn
        // into a temporary failure quickly, not after 2 × 5 s.
        opts.timeout = timeout.div_f32(2.0).max(Duration::from_millis(50));
        opts.attempts = 1;
        opts.cache_size = 4096;
        let (authenticator, zone) = match source {
            DnsSource::System => {
                let a = MessageAuthenticator::new_system_conf().map_err(|e| DnsError::Resolver(e.to_string()))?;
                (a, None)
            }
            DnsSource::Nameserver(addr) => (nameserver(*addr, opts)?, None),
            DnsSource::ZoneFile(path) => {
                let server = ZoneServer::from_file(path).await?;
                (nameserver(server.addr(), opts)?, Some(server))
            }
            DnsSource::ZoneText(text) => {
                let server = ZoneServer::start(zone::parse_zone(text, None)?).await?;
                (nameserver(server.addr(), opts)?, Some(server))
            }
        };
        Ok(Dns { authenticator, caches: Caches::default(), timeout, _zone: zone })
    }
}

fn nameserver(addr: SocketAddr, opts: ResolverOpts) -> Result<MessageAuthenticator, DnsError> {
    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
    for conn in &mut ns.connections {
        conn.port = addr.port();
    }
    let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
    MessageAuthenticator::new(config, opts).map_err(|e| DnsError::Resolver(e.to_string()))
}
