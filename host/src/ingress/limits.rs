//! Connection admission: a cap on open connections in total and per client
//! IP, checked before the greeting so a flood costs one reply per refused
//! connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many connections in total.
    Total,
    /// Too many connections from this IP.
    PerIp,
}

impl Refusal {
    /// The `421` reply sent before closing.
    pub fn reply(self) -> &'static str {
        match self {
            Refusal::Total => "421 4.7.0 Too many connections, try again later\r\n",
            Refusal::PerIp => "421 4.7.0 Too many connections from your address, try again later\r\n",
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Total => "refused_total",
            Refusal::PerIp => "refused_per_ip",
        }
    }
}

/// Open-connection caps, shared by every listener.
#[derive(Debug)]
pub struct ConnectionLimits {
    total: Arc<Semaphore>,
    max_total: usize,
    max_per_ip: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its places.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _total: OwnedSemaphorePermit,
}

impl ConnectionLimits {
    /// Caps of `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            max_per_ip,
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let permit = self.total.clone().try_acquire_owned().map_err(|_| Refusal::Total)?;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_ip.entry(ip).or_insert(0);
        if *open >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *open += 1;
        Ok(Admission { limits: self.clone(), ip, _total: permit })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.max_total - self.total.available_permits()
    }

    /// Waits until every admitted connection is closed, at most `timeout`;
    /// true when all closed in time.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let all = u32::try_from(self.max_total).unwrap_or(u32::MAX);
        tokio::time::timeout(timeout, self.total.acquire_many(all)).await.is_ok()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = per_ip.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_ip_and_frees_on_drop() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::PerIp);
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Total);
        assert_eq!(limits.open(), 3);
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _a3 = limits.admit(a).unwrap();
    }

    #[tokio::test]
    async fn drained_waits_for_open_connections() {
        let limits = ConnectionLimits::new(4, 4);
        let held = limits.admit("127.0.0.1".parse().unwrap()).unwrap();
        assert!(!limits.drained(Duration::from_millis(20)).await);
        drop(held);
        assert!(limits.drained(Duration::from_millis(20)).await);
    }
}
