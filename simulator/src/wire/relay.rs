//! Source-address relay: connections from chosen local addresses
//! (127.0.0.2, 127.0.0.3, ...) although rumqttc cannot bind one.
//!
//! rumqttc 0.25 opens its TCP socket itself (`socket_connect` in its event
//! loop) and offers no hook to bind it: `NetworkOptions` has buffer sizes,
//! `TCP_NODELAY`, a timeout and `bind_device` (`SO_BINDTODEVICE`, an
//! interface, not an address, and it needs `CAP_NET_RAW`), and its `Network`
//! type cannot be built outside the crate. It can, however, speak MQTT over
//! a Unix socket. So a device that must come from a given source address
//! talks to a per-device Unix listener of ours; for every connection rumqttc
//! makes there (reconnects included), the relay binds a TCP socket to the
//! device's source address, connects to the broker, adds TLS when
//! configured, and copies bytes both ways. Each source address has its own
//! range of ephemeral ports, so N addresses lift the ~28k-connection limit
//! N-fold even when the broker listens on one address only.
//!
//! Cost: one extra task, a Unix socket pair and a copy per connection.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use super::stats::{CONNECT_ERROR_REASONS, io_reason};

/// Where the per-device Unix sockets live (removed when dropped).
#[derive(Debug)]
pub(super) struct Relay {
    dir: tempfile::TempDir,
    /// Failures to reach the broker, by index into `CONNECT_ERROR_REASONS`.
    failures: Arc<[AtomicU64; CONNECT_ERROR_REASONS.len()]>,
}

/// How the relay reaches the broker for one device.
pub(super) struct Upstream {
    /// Local address to bind.
    pub source: IpAddr,
    /// Broker host (name or address) and port.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS client configuration, when the broker speaks TLS.
    pub tls: Option<Arc<ClientConfig>>,
}

impl Relay {
    pub(super) fn new() -> std::io::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("geoward-sim-").tempdir()?,
            failures: Arc::new(Default::default()),
        })
    }

    /// Failures so far, by reason (only reasons seen).
    pub(super) fn failures(&self) -> BTreeMap<&'static str, u64> {
        CONNECT_ERROR_REASONS
            .iter()
            .zip(self.failures.iter())
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Starts the listener of device number `index`; rumqttc connects to
    /// the returned path. The task runs until aborted.
    pub(super) fn listen(
        &self,
        index: usize,
        up: Upstream,
    ) -> std::io::Result<(PathBuf, JoinHandle<()>)> {
        let path = self.dir.path().join(format!("{index}.sock"));
        let listener = UnixListener::bind(&path)?;
        let up = Arc::new(up);
        let failures = self.failures.clone();
        let task = tokio::spawn(async move {
            while let Ok((inner, _)) = listener.accept().await {
                let (up, failures) = (up.clone(), failures.clone());
                tokio::spawn(async move {
                    if let Err(reason) = forward(inner, up).await
                        && let Some(i) = CONNECT_ERROR_REASONS.iter().position(|r| *r == reason)
                    {
                        failures[i].fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        Ok((path, task))
    }
}

/// One connection: bind, connect, optionally TLS, then copy until either
/// side closes. A failure to reach the broker closes the Unix side, which
/// rumqttc sees as a failed connection attempt (and retries); its reason
/// code is returned for the report.
async fn forward(mut inner: UnixStream, up: Arc<Upstream>) -> Result<(), &'static str> {
    let dest = tokio::net::lookup_host((up.host.as_str(), up.port))
        .await
        .map_err(|e| io_reason(&e))?
        .find(|a| a.is_ipv4() == up.source.is_ipv4())
        .ok_or("io")?;
    let tcp = connect_from(up.source, dest).await?;
    match &up.tls {
        None => {
            let mut tcp = tcp;
            let _ = tokio::io::copy_bidirectional(&mut inner, &mut tcp).await;
            let _ = tcp.shutdown().await;
        }
        Some(cfg) => {
            let name = ServerName::try_from(up.host.clone()).map_err(|_| "tls")?;
            let mut tls = TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|_| "tls")?;
            let _ = tokio::io::copy_bidirectional(&mut inner, &mut tls).await;
            let _ = tls.shutdown().await;
        }
    }
    Ok(())
}

async fn connect_from(
    source: IpAddr,
    dest: SocketAddr,
) -> Result<tokio::net::TcpStream, &'static str> {
    let reason = |e: std::io::Error| io_reason(&e);
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(reason)?;
    socket.set_nodelay(true).map_err(reason)?;
    // Binding reserves a port of this address: out of ports is AddrInUse,
    // an address that is not local is AddrNotAvailable.
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => "no_local_port",
            std::io::ErrorKind::AddrNotAvailable => "bad_source_address",
            _ => io_reason(&e),
        })?;
    socket.connect(dest).await.map_err(reason)
}
