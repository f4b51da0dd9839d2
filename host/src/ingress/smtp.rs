//! The SMTP and LMTP listeners: admission against the connection caps, one
//! task per conversation, STARTTLS hand-over, stop on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::limits::ConnectionLimits;
use super::session::{Ending, Protocol, Session, Shared};

/// Accepts connections until the server drains; each admitted one gets its
/// own task.
pub async fn accept_loop(listener: TcpListener, protocol: Protocol, shared: Arc<Shared>, caps: Arc<ConnectionLimits>) {
    let mut shutdown = shared.shutdown.clone();
    let label = protocol.label();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (mut tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: pause instead of spinning.
                tracing::warn!(listener = label, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let admission = match caps.admit(peer.ip()) {
            Ok(a) => a,
            Err(refusal) => {
                shared.metrics.connection(label, refusal.label());
                tracing::info!(listener = label, %peer, reason = refusal.label(), "connection refused");
                tokio::spawn(async move {
                    let write = tcp.write_all(refusal.reply().as_bytes());
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), write).await;
                    let _ = tcp.shutdown().await;
                });
                continue;
            }
        };
        shared.metrics.connection(label, "accepted");
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.metrics.session_opened();
            if let Err(e) = converse(tcp, peer, protocol, &shared).await {
                tracing::debug!(listener = label, %peer, error = %e, "connection ended with an error");
            }
            shared.metrics.session_closed();
            drop(admission);
        });
    }
}

async fn converse(
    mut tcp: TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    shared: &Arc<Shared>,
) -> std::io::Result<()> {
    let mut session = Session::new(shared.clone(), protocol, peer);
    session.greet(&mut tcp).await?;
    if session.run(&mut tcp).await? == Ending::Closed {
        return Ok(());
    }
    let Some(acceptor) = shared.tls.clone() else { return Ok(()) };
    let handshake = tokio::time::timeout(shared.limits.idle_timeout, acceptor.accept(tcp)).await;
    let mut tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    session.tls_established();
    session.run(&mut tls).await?;
    Ok(())
}
