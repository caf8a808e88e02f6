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

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// Where the per-device Unix sockets live (removed when dropped).
#[derive(Debug)]
pub(super) struct Relay {
    dir: tempfile::TempDir,
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
        })
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
        let task = tokio::spawn(async move {
            while let Ok((inner, _)) = listener.accept().await {
                tokio::spawn(forward(inner, up.clone()));
            }
        });
        Ok((path, task))
    }
}

/// One connection: bind, connect, optionally TLS, then copy until either
/// side closes. Any failure closes the Unix side, which rumqttc sees as a
/// failed connection attempt (and retries).
async fn forward(mut inner: UnixStream, up: Arc<Upstream>) {
    let Ok(Some(dest)) = tokio::net::lookup_host((up.host.as_str(), up.port))
        .await
        .map(|mut a| a.find(|a| a.is_ipv4() == up.source.is_ipv4()))
    else {
        return;
    };
    let Ok(tcp) = connect_from(up.source, dest).await else {
        return;
    };
    match &up.tls {
        None => {
            let mut tcp = tcp;
            let _ = tokio::io::copy_bidirectional(&mut inner, &mut tcp).await;
            let _ = tcp.shutdown().await;
        }
        Some(cfg) => {
            let Ok(name) = ServerName::try_from(up.host.clone()) else {
                return;
            };
            let Ok(mut tls) = TlsConnector::from(cfg.clone()).connect(name, tcp).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut inner, &mut tls).await;
            let _ = tls.shutdown().await;
        }
    }
}

async fn connect_from(source: IpAddr, dest: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_nodelay(true)?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(dest).await
}
