//! The TLS listener with client certificates (mTLS), black box: `geoward pki`
//! makes the CA, the server certificate and device certificates; a device connects
//! with its certificate, its fix is stored and acked on its tenant downlink; and a
//! device holding A's certificate cannot publish as B, even with B's secrets.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{Db, Device, Service, count_rows, free_port, sealed_fix, tls_client_config, wait_for};
use geoward_ingest::config::TlsListenerConfig;

const T: Duration = Duration::from_secs(15);

/// Runs `geoward pki ...` and checks it succeeded.
fn pki(args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geoward"))
        .arg("pki")
        .args(args)
        .env_remove("GEOWARD_CONFIG")
        .output()
        .expect("run geoward pki");
    assert!(
        out.status.success(),
        "geoward pki {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_device_publishes_and_cannot_publish_as_another() {
    let pki_dir = tempfile::tempdir().unwrap();
    let d = pki_dir.path().to_str().unwrap();
    pki(&["init", "--dir", d]);
    pki(&["issue", "devA", "--dir", d]);
    pki(&["issue", "devB", "--dir", d]);
    let dir = pki_dir.path();

    let tls_listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let svc = Service::start_with(Db::Sqlite, |c| {
        c.mqtt.tls = Some(TlsListenerConfig {
            listen: tls_listen,
            cert_path: dir.join("server.pem"),
            key_path: dir.join("server.key"),
            client_ca_path: dir.join("ca.pem"),
        });
    })
    .await;
    let a = svc.add_device("devA").await;
    let b = svc.add_device("devB").await;
    let ca = read(dir, "ca.pem");
    let a_tls = || tls_client_config(&ca, &read(dir, "devA.pem"), &read(dir, "devA.key"));

    // A, with its own certificate: stored and acked on its tenant downlink.
    let mut a_dev = Device::connect_tls(tls_listen.port(), &a, "devA", a_tls()).await;
    a_dev.wait_connected().await;
    a_dev.send_fix_tenant(1).await;
    a_dev.wait_ack(1, T).await;
    assert_eq!(count_rows(&svc.store, "fixes", "devA").await, 1);

    // A's certificate, B's device in the topic, under A's own tenant prefix (the
    // only prefix the broker lets A use): the pipeline refuses the tenant mismatch.
    a_dev
        .publish_raw(
            "/tenants/devA/geoward/v1/dev/devB/up/json",
            sealed_fix(
                &geoward_proto::DeviceId::new(&b.device_id).unwrap(),
                &a_dev.key,
                1,
            ),
        )
        .await;
    a_dev.send_fix_tenant(2).await;
    a_dev.wait_ack(2, T).await;

    // A's certificate with all of B's secrets (client id, password, payload key):
    // still confined to A's tenant, so a perfectly sealed fix of B is refused.
    let mut stolen = Device::connect_tls(tls_listen.port(), &b, "devA", a_tls()).await;
    stolen.wait_connected().await;
    stolen
        .publish_raw(
            "/tenants/devA/geoward/v1/dev/devB/up/json",
            sealed_fix(&stolen.id, &stolen.key, 1),
        )
        .await;
    wait_for("tenant mismatches counted", T, || async {
        svc.metric("geoward_security_events_total{kind=\"tenant_mismatch\"}")
            .await
            >= 2.0
    })
    .await;

    // B's tenant prefix with A's certificate: the broker refuses the publish and
    // drops the connection; it never reaches the pipeline.
    stolen
        .publish_raw(
            "/tenants/devB/geoward/v1/dev/devB/up/json",
            sealed_fix(&stolen.id, &stolen.key, 2),
        )
        .await;
    wait_for("foreign tenant publish disconnects", T, || async {
        !stolen.is_connected()
    })
    .await;
    // A plain uplink topic without a tenant prefix is refused the same way.
    a_dev
        .publish_raw(
            "geoward/v1/dev/devB/up/json",
            sealed_fix(&stolen.id, &stolen.key, 3),
        )
        .await;
    wait_for("untenanted publish disconnects", T, || async {
        !a_dev.is_connected()
    })
    .await;

    // A fresh connection of A still works, proving the pipeline kept going.
    let mut a_again = Device::connect_tls(tls_listen.port(), &a, "devA", a_tls()).await;
    a_again.wait_connected().await;
    a_again.send_fix_tenant(3).await;
    a_again.wait_ack(3, T).await;

    assert_eq!(count_rows(&svc.store, "fixes", "devB").await, 0);
    assert_eq!(count_rows(&svc.store, "evidence", "devB").await, 0);
    assert_eq!(count_rows(&svc.store, "fixes", "devA").await, 3);
    assert_eq!(
        svc.metric("geoward_messages_accepted_total{kind=\"fix\"}")
            .await,
        3.0,
        "only A's own three fixes were accepted"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_refuses_a_client_without_a_ca_signed_certificate() {
    let pki_dir = tempfile::tempdir().unwrap();
    let other_ca = tempfile::tempdir().unwrap();
    let d = pki_dir.path().to_str().unwrap();
    pki(&["init", "--dir", d]);
    pki(&["init", "--dir", other_ca.path().to_str().unwrap()]);
    pki(&["issue", "devC", "--dir", other_ca.path().to_str().unwrap()]);
    let dir = pki_dir.path();
    let tls_listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let svc = Service::start_with(Db::Sqlite, |c| {
        c.mqtt.tls = Some(TlsListenerConfig {
            listen: tls_listen,
            cert_path: dir.join("server.pem"),
            key_path: dir.join("server.key"),
            client_ca_path: dir.join("ca.pem"),
        });
    })
    .await;
    let c = svc.add_device("devC").await;
    // Trusts our server, but presents a certificate of another CA.
    let tls = tls_client_config(
        &read(dir, "ca.pem"),
        &read(other_ca.path(), "devC.pem"),
        &read(other_ca.path(), "devC.key"),
    );
    let dev = Device::connect_tls(tls_listen.port(), &c, "devC", tls).await;
    dev.send_fix_tenant(1).await;
    // The handshake fails, so the event loop ends without ever connecting.
    wait_for("client gave up", T, || async { dev.event_loop_ended() }).await;
    assert!(!dev.is_connected());
    assert_eq!(count_rows(&svc.store, "fixes", "devC").await, 0);
    svc.stop().await;
}
