//! What the embedded broker logs about connections that never speak MQTT.
//!
//! TCP health checks, port scans and the service's own start-up probe open a
//! connection and close it before CONNECT. At ERROR (upstream rumqttd) they
//! buried the broker's real errors; the vendored broker logs them at DEBUG.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing_subscriber::fmt::MakeWriter;

use crate::common::*;

/// Every log line of the process, for the assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn count(&self, needle: &str) -> usize {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes).matches(needle).count()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

const CLOSED: &str = "Connection closed before an MQTT connect packet";
const FAILED: &str = "Error while handling MQTT connect packet";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_before_connect_is_debug_and_a_bad_one_still_an_error() {
    let logs = Captured::default();
    // Global (the broker logs from its own threads); nextest gives each test
    // its own process, and no other test installs a subscriber.
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_env_filter("rumqttd=debug,warn")
        .init();
    let svc = Service::start(Db::Sqlite).await;
    let broker = ("127.0.0.1", svc.mqtt_port);

    // A probe: connect, then close without a word.
    drop(TcpStream::connect(broker).await.unwrap());
    // The control: a packet type no CONNECT has, so the capture and the
    // broker's ERROR for a real failure are both shown to work.
    let mut bad = TcpStream::connect(broker).await.unwrap();
    bad.write_all(&[0xF0, 0x00]).await.unwrap();

    let l = logs.clone();
    wait_for(
        "the bad connection's ERROR",
        Duration::from_secs(10),
        || {
            let l = l.clone();
            async move { l.count(FAILED) >= 1 }
        },
    )
    .await;
    // The service's start-up probe and ours.
    let l = logs.clone();
    wait_for("both probes at DEBUG", Duration::from_secs(10), || {
        let l = l.clone();
        async move { l.count(CLOSED) >= 2 }
    })
    .await;
    drop(bad);
    svc.stop().await;
    assert_eq!(logs.count(FAILED), 1, "only the bad connection is an error");
    assert_eq!(logs.count(" ERROR "), 1, "no other ERROR line");
}
