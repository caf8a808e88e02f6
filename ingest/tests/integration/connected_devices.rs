//! `geoward_connected_devices` follows the broker's real connections: clean
//! disconnects, dropped sockets and refused logins included.

use crate::common;

use std::time::Duration;

use common::{Db, Device, Service, wait_for};

const T: Duration = Duration::from_secs(15);
const GAUGE: &str = "geoward_connected_devices";

async fn wait_gauge(svc: &Service, want: f64) {
    wait_for(&format!("{GAUGE} = {want}"), T, || async {
        svc.metric(GAUGE).await == want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_devices_gauge_follows_connects_and_disconnects() {
    let svc = Service::start(Db::Sqlite).await;
    let mut creds = Vec::new();
    for id in ["cd1", "cd2", "cd3", "cd4"] {
        creds.push(svc.add_device(id).await);
    }
    let mut devs = Vec::new();
    for c in &creds[..3] {
        let mut d = Device::connect(svc.mqtt_port, c).await;
        d.wait_connected().await;
        devs.push(d);
    }
    wait_gauge(&svc, 3.0).await;

    // A clean MQTT DISCONNECT.
    let d = devs.pop().unwrap();
    d.client.disconnect().await.unwrap();
    wait_gauge(&svc, 2.0).await;

    // A socket that just goes away.
    devs.pop().unwrap().drop_connection();
    wait_gauge(&svc, 1.0).await;

    // A refused login does not count; the next good one does.
    let bad = Device::connect_as(
        svc.mqtt_port,
        "cd4",
        "cd4",
        "wrong-password",
        &creds[3].payload_key,
    )
    .await;
    wait_for("refused login counted", T, || async {
        svc.metric("geoward_auth_failures_total{reason=\"bad_password\"}")
            .await
            >= 1.0
    })
    .await;
    assert!(!bad.is_connected());
    let mut good = Device::connect(svc.mqtt_port, &creds[3]).await;
    good.wait_connected().await;
    wait_gauge(&svc, 2.0).await;
    // Stable over several router reports (one per second): never 3.
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while tokio::time::Instant::now() < until {
        assert_eq!(svc.metric(GAUGE).await, 2.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    svc.stop().await;
}
