//! Command-line interface: argument definitions and the commands that are not the
//! long-running service. `main.rs` parses and dispatches here.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_TOML};
use crate::store::{NewDevice, Store};

/// Electronic monitoring ingest service for community corrections.
#[derive(Debug, Parser)]
#[command(name = "geoward", version, about)]
pub struct Cli {
    /// Configuration file (TOML); `GEOWARD_<SECTION>__<KEY>` variables override it.
    #[arg(long, short, global = true, env = "GEOWARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: broker, pipeline, storage and HTTP API.
    Serve,
    /// Start everything on embedded defaults with a bundled sample (the districts of
    /// Zhengzhou, offices, subjects) and a simulated fleet; print live incidents.
    Demo {
        /// Simulated subjects, one bracelet each.
        #[arg(long, default_value_t = 200)]
        subjects: usize,
        /// Data directory of the demo; wiped at every start.
        #[arg(long, default_value = "geoward-demo")]
        data_dir: PathBuf,
        /// Seed of the simulated fleet.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print the documented default configuration.
    GenerateConfig,
    /// Check a configuration file (and the environment overrides) and exit.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Apply the embedded database migrations and exit.
    Migrate,
    /// Evidence chain tools.
    Evidence {
        /// Evidence subcommand.
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Audit log tools.
    Audit {
        /// Audit subcommand.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Certificate authority for device certificates (mTLS listener).
    Pki {
        /// PKI subcommand.
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Apply a declarative file of offices, subjects, devices, zones and rules
    /// (idempotent; new devices' credentials are printed once).
    Import {
        /// The TOML file.
        file: PathBuf,
    },
    /// API tokens for the admin API.
    Tokens {
        /// Tokens subcommand.
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Zone file tools (GeoJSON, optionally gzipped).
    Zones {
        /// Zones subcommand.
        #[command(subcommand)]
        command: ZonesCommand,
    },
    /// Device registry tools.
    Devices {
        /// Devices subcommand.
        #[command(subcommand)]
        command: DevicesCommand,
    },
}

/// `geoward evidence ...`
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Verify a device's evidence hash chain; exit code 1 when it is broken.
    Verify {
        /// The device whose chain to check.
        #[arg(long)]
        device: String,
    },
}

/// `geoward audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log's hash chain; exit code 1 when any entry was edited,
    /// deleted or reordered. Prints the head (`seq:hash`) to record elsewhere;
    /// with `--expect-head` a deleted tail is detected too.
    Verify {
        /// A head printed by an earlier verify (`seq:hash`); it must still be there.
        #[arg(long)]
        expect_head: Option<String>,
    },
}

/// `geoward zones ...`
#[derive(Debug, Subcommand)]
pub enum ZonesCommand {
    /// Report what import repairs and rejects in a zone file; exit code 1 when
    /// any feature is rejected.
    Validate {
        /// A `.geojson` or `.geojson.gz` file.
        file: PathBuf,
    },
    /// Print `id,zones` for each point of a CSV file with header `id,lon,lat`:
    /// the sorted, `;`-joined ids of the zones containing the point.
    Locate {
        /// A `.geojson` or `.geojson.gz` file.
        #[arg(long)]
        zones: PathBuf,
        /// The CSV file of points.
        #[arg(long)]
        points: PathBuf,
    },
}

/// `geoward pki ...`
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create the CA and the server certificate of the TLS listener.
    Init {
        /// Directory for the files (default: `<data_dir>/pki`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// DNS names or IP addresses of the server (default: localhost, 127.0.0.1).
        #[arg(long = "server-name")]
        server_names: Vec<String>,
    },
    /// Issue a client certificate for a device (Organization = device id).
    Issue {
        /// The device id.
        device: String,
        /// Directory of the CA (default: `<data_dir>/pki`).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `geoward tokens ...`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it once.
    Add {
        /// Who uses it (written to the audit log).
        #[arg(long)]
        name: String,
        /// `officer`, `bureau` or `admin`.
        #[arg(long)]
        role: String,
        /// The office it belongs to (not for admins).
        #[arg(long)]
        office: Option<String>,
    },
}

/// `geoward devices ...`
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Register a device (or rotate its credentials) and print them once.
    Add {
        /// Device id (letters and digits; it is also the TLS tenant).
        id: String,
        /// `bracelet` or `phone`.
        #[arg(long, default_value = "bracelet")]
        kind: String,
        /// Subject who wears the device.
        #[arg(long)]
        subject: Option<String>,
    },
}

/// Loads the configuration named on the command line plus the environment.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    Config::from_file_and_env(cli.config.as_deref())
}

/// `generate-config`.
pub fn generate_config(out: &mut impl Write) -> anyhow::Result<()> {
    out.write_all(DEFAULT_CONFIG_TOML.as_bytes())?;
    Ok(())
}

/// `check-config FILE`.
pub fn check_config(file: &std::path::Path, out: &mut impl Write) -> anyhow::Result<()> {
    Config::from_file_and_env(Some(file))?;
    writeln!(out, "{}: ok", file.display())?;
    Ok(())
}

/// `migrate`.
pub async fn migrate(config: &Config, out: &mut impl Write) -> anyhow::Result<()> {
    let store = Store::connect(&config.storage).await?;
    store.migrate().await?;
    store
        .maintain(
            config.storage.retention_days,
            config.storage.partition_interval_days,
            chrono::Utc::now(),
        )
        .await?;
    store.close().await;
    writeln!(out, "migrations applied")?;
    Ok(())
}

/// `evidence verify --device ID`; true when the chain is intact.
pub async fn evidence_verify(
    config: &Config,
    device: &str,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let store = Store::connect(&config.storage).await?;
    let result = store.verify_evidence(device).await?;
    store.close().await;
    match result {
        Ok(rows) => {
            writeln!(out, "evidence chain of {device}: intact ({rows} rows)")?;
            Ok(true)
        }
        Err(e) => {
            writeln!(
                out,
                "evidence chain of {device}: BROKEN ({}): {e}",
                e.reason()
            )?;
            Ok(false)
        }
    }
}

/// `audit verify`; true when the chain is intact (and holds `expect_head`).
pub async fn audit_verify(
    config: &Config,
    expect_head: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let head = match expect_head {
        Some(h) => {
            let (seq, hash) = h
                .split_once(':')
                .context("--expect-head must be seq:hash as printed by audit verify")?;
            Some((
                seq.parse::<u64>()
                    .context("--expect-head: seq is not a number")?,
                hash.to_owned(),
            ))
        }
        None => None,
    };
    let store = Store::connect(&config.storage).await?;
    let entries = crate::store::alerts::audit_entries(&store).await;
    store.close().await;
    let entries = entries?;
    let result = match &head {
        Some((seq, hash)) => {
            geoward_alerting::audit::verify_chain_with_head(&entries, (*seq, hash))
        }
        None => geoward_alerting::audit::verify_chain(&entries),
    };
    match result {
        Ok(()) => {
            match entries.last() {
                Some(last) => writeln!(
                    out,
                    "audit log: intact ({} entries); head {}:{}",
                    entries.len(),
                    last.seq,
                    last.hash
                )?,
                None => writeln!(out, "audit log: empty")?,
            }
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "audit log: BROKEN ({}): {e}", e.reason())?;
            Ok(false)
        }
    }
}

/// Credentials of a newly added device, shown once.
#[derive(Debug, Clone)]
pub struct IssuedCredentials {
    /// MQTT username and client id.
    pub device_id: String,
    /// MQTT password.
    pub password: String,
    /// Hex key for authenticated payloads.
    pub payload_key: String,
}

/// Registers a device with fresh random secrets; stores only the password's hash.
pub async fn add_device(
    store: &Store,
    id: &str,
    kind: &str,
    subject: Option<&str>,
) -> anyhow::Result<IssuedCredentials> {
    geoward_proto::TenantId::new(id)
        .with_context(|| format!("device id {id:?} must be letters and digits only"))?;
    anyhow::ensure!(
        matches!(kind, "bracelet" | "phone"),
        "device kind must be bracelet or phone"
    );
    let password = crate::auth::generate_secret();
    let payload_key = crate::auth::generate_secret();
    store
        .upsert_device(
            &NewDevice {
                id,
                kind,
                subject_id: subject,
                password_hash: &crate::auth::hash_password(&password),
                payload_key: &payload_key,
            },
            chrono::Utc::now(),
        )
        .await?;
    Ok(IssuedCredentials {
        device_id: id.to_owned(),
        password,
        payload_key,
    })
}

/// `devices add`.
pub async fn devices_add(
    config: &Config,
    id: &str,
    kind: &str,
    subject: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = Store::connect(&config.storage).await?;
    store.migrate().await?;
    let c = add_device(&store, id, kind, subject).await?;
    store.close().await;
    writeln!(
        out,
        "device {} registered; these secrets are shown once:",
        c.device_id
    )?;
    writeln!(out, "mqtt_username = {}", c.device_id)?;
    writeln!(out, "mqtt_client_id = {}", c.device_id)?;
    writeln!(out, "mqtt_password = {}", c.password)?;
    writeln!(out, "payload_key_hex = {}", c.payload_key)?;
    Ok(())
}

/// `pki init` / `pki issue`.
pub fn pki(config: &Config, command: &PkiCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let default_dir = config.storage.data_dir.join("pki");
    match command {
        PkiCommand::Init { dir, server_names } => {
            for f in crate::pki::init(dir.as_deref().unwrap_or(&default_dir), server_names)? {
                writeln!(out, "wrote {}", f.display())?;
            }
        }
        PkiCommand::Issue { device, dir } => {
            let (c, k) = crate::pki::issue_device(dir.as_deref().unwrap_or(&default_dir), device)?;
            writeln!(out, "wrote {}\nwrote {}", c.display(), k.display())?;
        }
    }
    Ok(())
}

/// `import FILE`.
pub async fn import(
    config: &Config,
    file: &std::path::Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = Store::connect(&config.storage).await?;
    store.migrate().await?;
    let report = crate::import::import(&store, file).await?;
    store.close().await;
    for (kind, n) in report.upserted {
        writeln!(out, "{kind}: {n}")?;
    }
    for c in report.new_devices {
        writeln!(
            out,
            "new device {}: mqtt_password = {} payload_key_hex = {} (shown once)",
            c.device_id, c.password, c.payload_key
        )?;
    }
    Ok(())
}

/// `tokens add`.
pub async fn tokens_add(
    config: &Config,
    name: &str,
    role: &str,
    office: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let role = crate::api::Role::parse(role)
        .ok_or_else(|| anyhow::anyhow!("role must be officer, bureau or admin"))?;
    let store = Store::connect(&config.storage).await?;
    store.migrate().await?;
    let token = crate::api::create_token(&store, name, role, office).await?;
    store.close().await;
    writeln!(out, "{token}")?;
    Ok(())
}
