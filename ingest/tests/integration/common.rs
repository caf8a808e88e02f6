//! Test harness: the real service on free ports, real rumqttc clients, a tiny HTTP
//! client, and helpers that wait for conditions with deadlines (never sleeps).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use geoward_ingest::Config;
use geoward_ingest::cli::{IssuedCredentials, add_device};
use geoward_ingest::store::Store;
use geoward_proto::{DeviceId, Encoding, Fix, PositionSource, Protection, Timestamp, Uplink};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A port nobody listens on right now (rumqttd binds its own sockets, so it
/// cannot be handed a listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the test's database lives.
pub enum Db {
    /// Embedded SQLite in the temp dir.
    Sqlite,
    /// A fresh database on the test cluster.
    Postgres(String),
}

/// A fresh PostgreSQL database on the cluster `./scripts/test` starts.
///
/// # Panics
/// When `GEOWARD_TEST_PG_URL` is not set: PostgreSQL tests must fail, never skip.
pub async fn fresh_pg_database() -> String {
    let url = std::env::var("GEOWARD_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("GEOWARD_TEST_PG_URL is not set: run the tests with ./scripts/test, which starts a throwaway PostgreSQL")
    });
    let name = format!("t_{}", geoward_ingest::auth::generate_secret());
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to the test cluster");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let (base, _) = url.rsplit_once('/').expect("url has a database");
    format!("{base}/{name}")
}

/// A running service.
pub struct Service {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub http: SocketAddr,
    pub mqtt_port: u16,
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Service {
    /// Starts the service with a fresh database and waits until it is ready.
    pub async fn start(db: Db) -> Service {
        Self::start_with(db, |_| {}).await
    }

    /// Like [`Service::start`], with a hook to adjust the config.
    pub async fn start_with(db: Db, adjust: impl FnOnce(&mut Config)) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().join("data");
        if let Db::Postgres(url) = db {
            config.storage.database_url = url;
        }
        config.storage.batch_max_delay_ms = 20;
        config.mqtt.tcp_listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        config.mqtt.segment_size_bytes = 1 << 20;
        config.mqtt.segment_count = 4;
        adjust(&mut config);
        let store = Store::connect(&config.storage).await.unwrap();
        store.migrate().await.unwrap();
        Self::spawn(dir, config, store).await
    }

    async fn spawn(dir: tempfile::TempDir, config: Config, store: Store) -> Service {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            geoward_ingest::run(cfg, listener, async move {
                let _ = stopped.await;
            })
            .await
        });
        let s = Service {
            dir,
            mqtt_port: config.mqtt.tcp_listen.port(),
            config,
            http,
            store,
            stop: Some(stop),
            task: Some(task),
        };
        let http = s.http;
        wait_for("service ready", Duration::from_secs(20), || async move {
            http_get(http, "/readyz")
                .await
                .map(|(status, _)| status == 200)
                .unwrap_or(false)
        })
        .await;
        s
    }

    /// Registers a device and returns its credentials.
    pub async fn add_device(&self, id: &str) -> IssuedCredentials {
        add_device(&self.store, id, "bracelet", None).await.unwrap()
    }

    /// The value of a metric line (exact name with labels), 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, body) = http_get(self.http, "/metrics").await.unwrap();
        body.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0.0)
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(12), t)
                .await
                .expect("service stops within the shutdown deadline")
                .unwrap()
                .unwrap();
        }
    }

    /// Stops the service and keeps its directory (and database) for a restart.
    pub async fn stop_keep_dir(mut self) -> tempfile::TempDir {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        self.stop().await;
        dir
    }

    /// Starts the service again on the same data. The MQTT port is new: rumqttd
    /// cannot be stopped, so the old broker keeps its port for the life of the test.
    pub async fn restart(dir: tempfile::TempDir, mut config: Config) -> Service {
        config.mqtt.tcp_listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let store = Store::connect(&config.storage).await.unwrap();
        Self::spawn(dir, config, store).await
    }
}

/// Polls `cond` until it is true or `timeout` passes (then panics naming `what`).
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A device connected over plain TCP, subscribed to its downlink.
pub struct Device {
    pub id: DeviceId,
    pub key: Vec<u8>,
    pub client: AsyncClient,
    acks: tokio::sync::watch::Receiver<u64>,
    /// PUBACKs received: the broker has that many of our publishes in its log.
    pubacks: tokio::sync::watch::Receiver<u64>,
    connected: tokio::sync::watch::Receiver<bool>,
    _task: JoinHandle<()>,
}

impl Device {
    /// Connects as `creds` (client id = username = device id). Like a real
    /// device, it tries again (at most twice) if its first connection attempt
    /// fails; each failure is printed with its cause.
    pub async fn connect(port: u16, creds: &IssuedCredentials) -> Device {
        Self::open(
            port,
            &creds.device_id,
            &creds.device_id,
            &creds.password,
            &creds.payload_key,
            2,
        )
        .await
    }

    /// Connects with explicit identity (for impostor tests): one attempt,
    /// so a refused login stays refused.
    pub async fn connect_as(
        port: u16,
        client_id: &str,
        user: &str,
        password: &str,
        key_hex: &str,
    ) -> Device {
        Self::open(port, client_id, user, password, key_hex, 0).await
    }

    async fn open(
        port: u16,
        client_id: &str,
        user: &str,
        password: &str,
        key_hex: &str,
        retries: u32,
    ) -> Device {
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_credentials(user, password);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, eventloop) = AsyncClient::new(opts, 100);
        let (ack_tx, acks) = tokio::sync::watch::channel(0u64);
        let (puback_tx, pubacks) = tokio::sync::watch::channel(0u64);
        let (conn_tx, connected) = tokio::sync::watch::channel(false);
        let id = DeviceId::new(user).unwrap();
        // Queued before the event loop starts: it goes out once connected, and
        // a connection that fails at once cannot close the queue under it.
        client
            .subscribe(format!("geoward/v1/dev/{user}/down"), QoS::AtLeastOnce)
            .await
            .unwrap();
        let links = Links {
            acks: ack_tx,
            pubacks: puback_tx,
            connected: conn_tx,
        };
        let task = tokio::spawn(drive(eventloop, links, user.to_owned(), retries));
        Device {
            id,
            key: hex::decode(key_hex).unwrap(),
            client,
            acks,
            pubacks,
            connected,
            _task: task,
        }
    }

    /// Waits until the broker accepted the connection.
    pub async fn wait_connected(&mut self) {
        let mut c = self.connected.clone();
        tokio::time::timeout(Duration::from_secs(10), c.wait_for(|v| *v))
            .await
            .expect("connected in time")
            .unwrap();
    }

    /// Whether the broker accepted the connection and it is still up.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Publishes raw bytes on a topic.
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Publishes a MAC-sealed JSON fix with this device's own key on its own topic.
    pub async fn send_fix(&self, seq: u64) {
        let payload = sealed_fix(&self.id, &self.key, seq);
        self.publish_raw(&format!("geoward/v1/dev/{}/up/json", self.id), payload)
            .await;
    }

    /// Highest ack received so far.
    pub fn acked(&self) -> u64 {
        *self.acks.borrow()
    }

    /// Waits until the broker has PUBACKed `n` publishes of this connection.
    pub async fn wait_pubacks(&mut self, n: u64, timeout: Duration) {
        let mut a = self.pubacks.clone();
        tokio::time::timeout(timeout, a.wait_for(|v| *v >= n))
            .await
            .unwrap_or_else(|_| panic!("no {n} PUBACKs in time (got {})", *self.pubacks.borrow()))
            .unwrap();
    }

    /// Waits until an ack of at least `seq` arrives.
    pub async fn wait_ack(&mut self, seq: u64, timeout: Duration) {
        let mut a = self.acks.clone();
        tokio::time::timeout(timeout, a.wait_for(|v| *v >= seq))
            .await
            .unwrap_or_else(|_| panic!("no ack for {seq} in time (last {})", self.acked()))
            .unwrap();
    }
}

/// A valid fix measured `seq` seconds after a fixed recent time.
pub fn fix(seq: u64) -> Fix {
    let now = chrono::Utc::now().timestamp_millis();
    Fix {
        seq,
        time: Timestamp(now - 600_000 + seq as i64 * 1000),
        lat: 31.2304 + seq as f64 * 1e-5,
        lon: 121.4737,
        accuracy_m: 8.0,
        altitude_m: None,
        speed_mps: Some(1.0),
        heading_deg: None,
        satellites: Some(9),
        source: PositionSource::Gnss,
    }
}

/// A MAC-sealed JSON fix message.
pub fn sealed_fix(device: &DeviceId, key: &[u8], seq: u64) -> Vec<u8> {
    geoward_proto::encode_uplink(
        device,
        &Uplink::Fix(fix(seq)),
        Encoding::Json,
        Protection::Mac { secret: key },
    )
    .unwrap()
}

/// Polls a device's event loop until its connection fails; a failure before
/// the first CONNACK is retried up to `retries` times.
/// What a device's event loop reports.
struct Links {
    acks: tokio::sync::watch::Sender<u64>,
    pubacks: tokio::sync::watch::Sender<u64>,
    connected: tokio::sync::watch::Sender<bool>,
}

async fn drive(mut eventloop: EventLoop, links: Links, device: String, mut retries: u32) {
    let Links {
        acks,
        pubacks,
        connected,
    } = links;
    let mut accepted = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                accepted = true;
                let _ = connected.send(true);
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => pubacks.send_modify(|n| *n += 1),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Ok(geoward_proto::Downlink::Ack(a)) = geoward_proto::decode_downlink(
                    &p.payload,
                    &geoward_proto::DecodeOptions::default(),
                ) {
                    acks.send_modify(|v| *v = (*v).max(a.seq));
                }
            }
            Ok(_) => {}
            Err(e) if !accepted && retries > 0 => {
                retries -= 1;
                eprintln!("device {device}: connection attempt failed ({e:?}), trying again");
            }
            Err(_) => {
                let _ = connected.send(false);
                return;
            }
        }
    }
}

/// Rows in a table for a device, straight from the database.
pub async fn count_rows(store: &Store, table: &str, device: &str) -> i64 {
    // Table names come from the tests themselves.
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE device_id = $1");
    geoward_ingest::with_pool!(store, p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
        .bind(device).fetch_one(p).await.unwrap())
}

impl Device {
    /// Publishes any uplink, MAC-sealed JSON, on this device's own topic.
    pub async fn send(&self, message: &Uplink) {
        let payload = geoward_proto::encode_uplink(
            &self.id,
            message,
            Encoding::Json,
            Protection::Mac { secret: &self.key },
        )
        .unwrap();
        self.publish_raw(&format!("geoward/v1/dev/{}/up/json", self.id), payload)
            .await;
    }
}

/// A GNSS fix at a place and time.
pub fn fix_at(seq: u64, time_ms: i64, lat: f64, lon: f64) -> Fix {
    Fix {
        seq,
        time: Timestamp(time_ms),
        lat,
        lon,
        accuracy_m: 5.0,
        altitude_m: None,
        speed_mps: None,
        heading_deg: None,
        satellites: Some(9),
        source: PositionSource::Gnss,
    }
}

/// One HTTP/1.1 request to the admin API with a bearer token; (status, body).
pub async fn api(
    svc: &Service,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(svc.http).await.unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text[9..12].parse().unwrap();
    (
        status,
        text.split_once("\r\n\r\n")
            .map(|x| x.1.to_owned())
            .unwrap_or_default(),
    )
}

/// A live-feed (SSE) reader over a raw HTTP/1.0 connection (no chunked framing).
pub struct FeedReader {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
    /// Status code of the response.
    pub status: u16,
}

/// One SSE event.
#[derive(Debug, Clone)]
pub struct FeedFrame {
    pub id: u64,
    pub event: String,
    pub data: serde_json::Value,
}

impl FeedReader {
    /// Opens `/api/feed?{query}` with `last_event_id` as the `Last-Event-ID` header.
    pub async fn open(
        svc: &Service,
        token: &str,
        query: &str,
        last_event_id: Option<u64>,
    ) -> FeedReader {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(svc.http).await.unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /api/feed?{query} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Accept: text/event-stream\r\n{resume}\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut lines = tokio::io::BufReader::new(s).lines();
        let status_line = lines.next_line().await.unwrap().unwrap_or_default();
        let status = status_line
            .get(9..12)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.trim().is_empty() {
                break;
            }
        }
        FeedReader { lines, status }
    }

    /// The next event, waiting at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<FeedFrame> {
        tokio::time::timeout(timeout, async {
            let (mut id, mut event, mut data) = (None, String::new(), String::new());
            while let Some(line) = self.lines.next_line().await.ok()? {
                let line = line.trim_end_matches('\r');
                if line.is_empty() {
                    if let Some(id) = id.filter(|_| !data.is_empty()) {
                        return Some(FeedFrame {
                            id,
                            event,
                            data: serde_json::from_str(&data).unwrap(),
                        });
                    }
                    continue;
                }
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}

/// The real `geoward` binary running `serve` with a config file; killed with
/// SIGKILL when dropped, so a failing test leaves no process behind.
pub struct GeowardProcess {
    child: Option<std::process::Child>,
}

impl GeowardProcess {
    /// Starts `geoward --config <config> serve`.
    pub fn serve(config: &Path) -> GeowardProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_geoward"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("GEOWARD_LOG", "warn,rumqttd::server::broker=off")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start geoward");
        GeowardProcess { child: Some(child) }
    }

    /// Waits until `/readyz` on `http` answers 200; panics if the process exits.
    pub async fn wait_ready(&mut self, http: SocketAddr) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait().unwrap()
            {
                panic!("geoward exited before it was ready: {status}");
            }
            if http_get(http, "/readyz")
                .await
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for geoward to be ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL (`kill -9`) and reap.
    pub fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for GeowardProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The stored sequence numbers of a device's fixes, ascending (duplicates kept).
pub async fn stored_seqs(store: &Store, device: &str) -> Vec<i64> {
    geoward_ingest::with_pool!(store, p => sqlx::query_scalar(
        "SELECT seq FROM fixes WHERE device_id = $1 ORDER BY seq"
    )
    .bind(device)
    .fetch_all(p)
    .await
    .unwrap())
}

/// Asserts that the device's stored fixes are exactly sequences 1..=`n`, each
/// once; `context` says what happened to them (in the failure message).
pub async fn assert_stored_once(store: &Store, device: &str, n: u64, context: &str) {
    let stored = stored_seqs(store, device).await;
    let want: Vec<i64> = (1..=n as i64).collect();
    assert!(
        stored == want,
        "want 1..={n} exactly once, stored {} rows ({context})",
        stored.len()
    );
}

/// A rustls client configuration for mTLS: trusts `ca_pem`, presents `cert_pem` and
/// `key_pem`. The crypto provider is ring, chosen explicitly because the dependency
/// graph enables more than one provider (rustls then has no process default).
pub fn tls_client_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> rumqttc::TlsConfiguration {
    use rumqttc::tokio_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config))
}

impl Device {
    /// Connects over TLS as `creds` (client id = username = device id), presenting
    /// the client certificate in `tls` (whose Organization is `tenant`), and
    /// subscribes to the device's downlink under that tenant prefix (the only
    /// topics an mTLS client may use; any other filter gets it disconnected).
    pub async fn connect_tls(
        port: u16,
        creds: &IssuedCredentials,
        tenant: &str,
        tls: rumqttc::TlsConfiguration,
    ) -> Device {
        let mut opts = MqttOptions::new(&creds.device_id, "127.0.0.1", port);
        opts.set_credentials(&creds.device_id, &creds.password);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_transport(rumqttc::Transport::tls_with_config(tls));
        let (client, eventloop) = AsyncClient::new(opts, 100);
        let (ack_tx, acks) = tokio::sync::watch::channel(0u64);
        let (puback_tx, pubacks) = tokio::sync::watch::channel(0u64);
        let (conn_tx, connected) = tokio::sync::watch::channel(false);
        let id = DeviceId::new(&creds.device_id).unwrap();
        // Queued before the event loop starts (see `Device::open`).
        client
            .subscribe(
                format!("/tenants/{tenant}/geoward/v1/dev/{id}/down"),
                QoS::AtLeastOnce,
            )
            .await
            .unwrap();
        let links = Links {
            acks: ack_tx,
            pubacks: puback_tx,
            connected: conn_tx,
        };
        let task = tokio::spawn(drive(eventloop, links, id.to_string(), 0));
        Device {
            id,
            key: hex::decode(&creds.payload_key).unwrap(),
            client,
            acks,
            pubacks,
            connected,
            _task: task,
        }
    }

    /// Publishes a MAC-sealed fix on this device's own topic under its tenant prefix.
    pub async fn send_fix_tenant(&self, seq: u64) {
        let payload = sealed_fix(&self.id, &self.key, seq);
        self.publish_raw(
            &format!("/tenants/{0}/geoward/v1/dev/{0}/up/json", self.id),
            payload,
        )
        .await;
    }
}

impl Device {
    /// Whether the client's event loop has ended (connection refused or lost).
    pub fn event_loop_ended(&self) -> bool {
        self._task.is_finished()
    }
}

/// A PostgreSQL cluster of a test's own, which the test may stop and start (the
/// shared cluster of `./scripts/test` must never be disturbed). Binaries come from
/// `GEOWARD_TEST_PG_BIN`; when running as root the cluster runs as `postgres`, like
/// `./scripts/test` does (initdb refuses root). Stopped and removed on drop.
pub struct OwnPgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// URL of the cluster's `postgres` database.
    pub url: String,
}

impl OwnPgCluster {
    /// Creates and starts a throwaway cluster on a free port.
    ///
    /// # Panics
    /// When `GEOWARD_TEST_PG_BIN` is not set: PostgreSQL tests must fail, never skip.
    pub fn start() -> OwnPgCluster {
        let bin = PathBuf::from(std::env::var("GEOWARD_TEST_PG_BIN").unwrap_or_else(|_| {
            panic!("GEOWARD_TEST_PG_BIN is not set: run the tests with ./scripts/test, which finds the PostgreSQL binaries")
        }));
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            run_ok(
                std::process::Command::new("chown")
                    .arg("postgres")
                    .arg(dir.path()),
            );
        }
        let port = free_port();
        let c = OwnPgCluster {
            url: format!("postgres://geoward@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            port,
        };
        run_ok(c.pg_command("initdb").arg("-D").arg(c.data()).args([
            "-U",
            "geoward",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        ]));
        c.start_again();
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_command(&self, tool: &str) -> std::process::Command {
        let exe = self.bin.join(tool);
        if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        }
    }

    /// Starts the (stopped) cluster on its port and waits until it accepts connections.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        run_ok(
            self.pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &opts, "start"]),
        );
    }

    /// Stops the cluster like a crash (`-m immediate`: no shutdown checkpoint).
    pub fn stop(&self) {
        run_ok(self.pg_command("pg_ctl").arg("-D").arg(self.data()).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }
}

impl Drop for OwnPgCluster {
    fn drop(&mut self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn run_ok(cmd: &mut std::process::Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Device {
    /// Drops the connection without an MQTT DISCONNECT, like a device losing power.
    pub fn drop_connection(self) {
        self._task.abort();
    }
}

/// A base time for [`sealed_paced_fix`]: 30 minutes ago, so 20 000 paced fixes
/// still lie in the past (proto refuses times more than 5 min ahead).
pub fn paced_base_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() - 30 * 60 * 1000
}

/// A MAC-sealed JSON fix for load tests: measured `seq` × 50 ms after `base_ms`,
/// moving 0.1 m per fix. Same inputs, same bytes, so a resend is a true duplicate.
pub fn sealed_paced_fix(device: &DeviceId, key: &[u8], seq: u64, base_ms: i64) -> Vec<u8> {
    let f = fix_at(
        seq,
        base_ms + seq as i64 * 50,
        31.2304 + seq as f64 * 1e-6,
        121.4737,
    );
    geoward_proto::encode_uplink(
        device,
        &Uplink::Fix(f),
        Encoding::Json,
        Protection::Mac { secret: key },
    )
    .unwrap()
}

impl Device {
    /// Publishes [`sealed_paced_fix`] on this device's own topic.
    pub async fn send_paced_fix(&self, seq: u64, base_ms: i64) {
        let payload = sealed_paced_fix(&self.id, &self.key, seq, base_ms);
        self.publish_raw(&format!("geoward/v1/dev/{}/up/json", self.id), payload)
            .await;
    }
}

impl Device {
    /// The device's ack watermark as a watch, for publishers that keep a bounded
    /// window of unacked fixes (as a device's store-and-forward buffer does).
    pub fn ack_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.acks.clone()
    }
}
