//! The `geoward` binary: parse arguments, set up logging, dispatch. Everything else
//! lives in the library so tests drive the same code.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use geoward_ingest::cli::{
    self, AuditCommand, Cli, Command, DevicesCommand, EvidenceCommand, TokensCommand, ZonesCommand,
};
use geoward_ingest::zones_cmd;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GEOWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Cli::parse();
    match dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(args: Cli) -> anyhow::Result<ExitCode> {
    // Not locked for the whole command: the demo prints from several tasks.
    let mut out = std::io::stdout();
    match &args.command {
        Command::GenerateConfig => cli::generate_config(&mut out)?,
        Command::CheckConfig { file } => cli::check_config(file, &mut out)?,
        Command::Pki { command } => cli::pki(&cli::load_config(&args)?, command, &mut out)?,
        // Zone tools read files only: no configuration, no runtime.
        Command::Zones {
            command: ZonesCommand::Validate { file },
        } => {
            if !zones_cmd::validate(file, &mut out)? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Zones {
            command: ZonesCommand::Locate { zones, points },
        } => zones_cmd::locate(zones, points, &mut out)?,
        command => {
            let config = cli::load_config(&args)?;
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            return rt.block_on(async {
                match command {
                    Command::Serve => serve(config).await?,
                    Command::Demo {
                        subjects,
                        data_dir,
                        seed,
                    } => {
                        let opts = geoward_ingest::demo::DemoOptions {
                            subjects: *subjects,
                            data_dir: data_dir.clone(),
                            seed: *seed,
                        };
                        geoward_ingest::demo::run(config, opts, shutdown_signal()).await?
                    }
                    Command::Migrate => cli::migrate(&config, &mut out).await?,
                    Command::Evidence {
                        command: EvidenceCommand::Verify { device },
                    } => {
                        if !cli::evidence_verify(&config, device, &mut out).await? {
                            return Ok(ExitCode::from(1));
                        }
                    }
                    Command::Audit {
                        command: AuditCommand::Verify { expect_head },
                    } => {
                        if !cli::audit_verify(&config, expect_head.as_deref(), &mut out).await? {
                            return Ok(ExitCode::from(1));
                        }
                    }
                    Command::Import { file } => cli::import(&config, file, &mut out).await?,
                    Command::Tokens {
                        command: TokensCommand::Add { name, role, office },
                    } => cli::tokens_add(&config, name, role, office.as_deref(), &mut out).await?,
                    Command::Devices {
                        command: DevicesCommand::Add { id, kind, subject },
                    } => cli::devices_add(&config, id, kind, subject.as_deref(), &mut out).await?,
                    Command::GenerateConfig
                    | Command::CheckConfig { .. }
                    | Command::Pki { .. }
                    | Command::Zones { .. } => {}
                }
                Ok(ExitCode::SUCCESS)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: geoward_ingest::Config) -> anyhow::Result<()> {
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding http listener {}", config.http.listen))?;
    geoward_ingest::run(config, http, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
