//! Accepted connections have Nagle's algorithm off. With it on, the
//! application ack that follows a PUBACK, and a live-feed event that follows
//! another, wait for the peer's delayed TCP ACK: up to 40 ms each on Linux
//! (`benches/RESULTS.md`, "Fix to feed, stage by stage"). The service runs in
//! this process, so the test reads the option off the service's own end of
//! each connection.

use crate::common;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{Db, Service, wait_for};
use rustix::net::sockopt::tcp_nodelay;
use rustix::net::{getpeername, getsockname};
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// This process's socket from `local` to `peer` (a duplicate of it), if it
/// exists yet.
fn accepted(local: SocketAddr, peer: SocketAddr) -> Option<OwnedFd> {
    let pidfd = pidfd_open(getpid(), PidfdFlags::empty()).expect("pidfd of this process");
    let addr = |a: Option<rustix::net::SocketAddrAny>| a.and_then(|a| SocketAddr::try_from(a).ok());
    std::fs::read_dir("/proc/self/fd")
        .expect("list fds")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        // A duplicate of the descriptor, whatever it is; not a socket: skipped.
        .filter_map(|raw| pidfd_getfd(&pidfd, raw, PidfdGetfdFlags::empty()).ok())
        .find(|fd| {
            addr(getsockname(fd).ok()) == Some(local)
                && addr(getpeername(fd).ok().flatten()) == Some(peer)
        })
}

async fn assert_nodelay(server: SocketAddr, what: &str) {
    let client = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect");
    let peer = client.local_addr().unwrap();
    // The server accepts asynchronously.
    wait_for("the accepted socket", Duration::from_secs(5), || async {
        accepted(server, peer).is_some()
    })
    .await;
    let fd = accepted(server, peer).expect("accepted");
    assert!(
        tcp_nodelay(&fd).expect("a TCP socket"),
        "{what}: the accepted connection has Nagle's algorithm on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_and_api_connections_have_nagle_off() {
    let svc = Service::start(Db::Sqlite).await;
    let mqtt: SocketAddr = format!("127.0.0.1:{}", svc.mqtt_port).parse().unwrap();
    assert_nodelay(mqtt, "MQTT listener").await;
    assert_nodelay(svc.http, "HTTP API").await;
    svc.stop().await;
}
