//! Accepted connections have Nagle's algorithm off. With it on, the
//! application ack that follows a PUBACK, and a live-feed event that follows
//! another, wait for the peer's delayed TCP ACK: up to 40 ms each on Linux
//! (`benches/RESULTS.md`, "Fix to feed, stage by stage"). The service runs in
//! this process, so the test reads the option off the service's own end of
//! each connection.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Db, Service};
use rustix::net::sockopt::tcp_nodelay;
use rustix::net::{getpeername, getsockname};
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// TCP_NODELAY of this process's socket from `local` to `peer`, once it exists.
async fn nodelay_of(local: SocketAddr, peer: SocketAddr) -> bool {
    let pidfd = pidfd_open(getpid(), PidfdFlags::empty()).expect("pidfd of this process");
    for _ in 0..100 {
        for entry in std::fs::read_dir("/proc/self/fd").expect("list fds") {
            let Some(raw) = entry
                .ok()
                .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
            else {
                continue;
            };
            // A duplicate of the descriptor, whatever it is; not a socket: skip.
            let Ok(fd) = pidfd_getfd(&pidfd, raw, PidfdGetfdFlags::empty()) else {
                continue;
            };
            let addr = |a: Option<rustix::net::SocketAddrAny>| {
                a.and_then(|a| SocketAddr::try_from(a).ok())
            };
            if addr(getsockname(&fd).ok()) == Some(local)
                && addr(getpeername(&fd).ok().flatten()) == Some(peer)
            {
                return tcp_nodelay(&fd).expect("a TCP socket");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no accepted socket from {peer} to {local}");
}

async fn assert_nodelay(server: SocketAddr, what: &str) {
    let client = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect");
    let peer = client.local_addr().unwrap();
    assert!(
        nodelay_of(server, peer).await,
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
