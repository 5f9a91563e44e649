//! The `custos` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use custos::accounts::SetBy;
use custos::config::Roles;
use custos::demo::{self, DemoOptions};
use custos::{Config, Custos, IngestNode};
use ledger::{NoteSigner, VerifierKey};

/// Custos allocates many small values per record (an event's fields); mimalloc
/// serves them faster than the system allocator (measured in the parser benches).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "custos", version, about = "Security event correlation and GxP audit trail for OT plants")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum EvidenceAction {
    /// Export the records ledgered between FROM and TO (RFC 3339), optionally
    /// only about an asset or one incident, with inclusion proofs, into one
    /// file `custos verify` checks offline. Run with Custos stopped (the export
    /// is itself ledgered as an audit record).
    Export {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        asset: Option<String>,
        #[arg(long)]
        incident: Option<String>,
        /// Why (an inspection, a batch release): in the bundle and the audit record.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process plus a simulated plant.
    Demo {
        /// Data directory (kept across restarts). Default: a fresh temporary directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// API address.
        #[arg(long, default_value = "127.0.0.1:8088")]
        http: SocketAddr,
        /// Seconds per plant tick.
        #[arg(long, default_value_t = 1.0)]
        tick_seconds: f64,
        /// Forward control-room alarms as RFC 5424 syslog over TCP to HOST:PORT.
        #[arg(long)]
        alarm_syslog: Option<String>,
        /// POST control-room alarms as JSON to this http:// URL.
        #[arg(long)]
        alarm_webhook: Option<String>,
    },
    /// Ask a running Custos whether it is ready (or alive): GET the URL, print
    /// the answer, exit 0 on a 2xx status and 1 otherwise. For container and
    /// service health checks, e.g. `custos probe http://127.0.0.1:8088/readyz`.
    Probe {
        /// An http:// URL: the API's or a collector's `/readyz` or `/healthz`.
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5.0)]
        timeout_seconds: f64,
    },
    /// Run with a configuration file.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Stages to run: `all`, or some of ingest, correlate, ledger, api
        /// (split roles need `[bus] kind = "kafka"`).
        #[arg(long, default_value = "all")]
        roles: String,
    },
    /// Verify a ledger directory offline; exits non-zero naming the first bad index.
    Verify {
        /// The ledger directory (`<data-dir>/ledger`).
        path: PathBuf,
        /// Trust only this verifier key (`name+id+key`, or a file holding it),
        /// instead of the keys listed in the ledger.
        #[arg(long)]
        key: Option<String>,
        /// Also check C2SP tlog-cosignatures by this witness key (repeatable);
        /// checkpoints cosigned by it must verify.
        #[arg(long)]
        witness: Vec<String>,
    },
    /// Rebuild the search index and the Parquet archive of a data directory
    /// from its ledger (Custos must be stopped).
    Reindex {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Feed recorded log files through the parsers and print a summary per
    /// format; with --data-dir, through the whole pipeline into that ledger.
    Replay {
        /// The format: syslog, cef, leef, suricata-eve, zeek-tsv, zeek-json, badge-json,
        /// gallagher, lenel, genetec-csv, ccure-csv, badge-csv, plc-backup, octoplant-job.
        #[arg(long)]
        source: String,
        /// Ingest into this data directory (ledger, correlation) instead of a dry run.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Inventory for enrichment.
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// Column mapping (TOML) for `badge-csv`.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Measure throughput: `tcp-syslog` (senders → source → bus) or `ledger`
    /// (appends with group commit, reopen, verify, proofs, storage overhead).
    Bench(BenchArgs),
    /// People: `add NAME --role ROLE --printed-name "…"` (password from
    /// standard input; prints an API token), `passwd NAME` (password from
    /// standard input), `token NAME` (a new API token, replacing the old one),
    /// `disable NAME` (ends its tokens and sessions; no login, no signature).
    /// Each change is ledgered as an `audit` record by the running service.
    User {
        /// add, passwd, token, disable (each with a NAME) or list.
        action: String,
        name: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        printed_name: Option<String>,
        #[arg(long)]
        data_dir: PathBuf,
        /// `list`: the access review as JSON, as `GET /api/v1/accounts` answers.
        #[arg(long)]
        json: bool,
        /// `list`: the service's configuration file (its `data_dir` must be
        /// `--data-dir`), whose `[accounts]` password ageing the review
        /// applies: an EXPIRES column, and `password_expires_at` in JSON.
        #[arg(long)]
        config: Option<PathBuf>,
        /// `add`, `passwd`: the password is its holder's own, not temporary
        /// (by default its holder must change it at the next login, as
        /// whoever ran the command knows it).
        #[arg(long)]
        not_temporary: bool,
        /// `add`, `token`: the API token works this many days (default:
        /// until the next `custos user token` or `disable`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        token_days: Option<u32>,
    },
    /// Evidence bundles for inspections.
    Evidence {
        #[command(subcommand)]
        action: EvidenceAction,
    },
    /// Check Sigma rules: `lint DIR` (compile, `file:line` errors) or
    /// `test DIR` (run each rule's `custos.examples`).
    Rules {
        /// `lint` or `test`.
        action: String,
        /// Rule directory (`*.yml`, recursively).
        dir: PathBuf,
        /// Inventory for `|expand` placeholders. Default: the shipped example.
        #[arg(long)]
        inventory: Option<PathBuf>,
    },
    /// Generate an Ed25519 checkpoint signing key.
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Key name = the ledger origin it signs for.
        #[arg(long, default_value = "custos.local/ledger")]
        origin: String,
    },
}

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3); the Rust bindings
/// do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed is kept 10 s before it goes back to the OS (mimalloc's
/// default: 1 s). The search index and the archive build segments and column
/// chunks in cycles of a few seconds: memory given back between two cycles
/// was faulted in and zeroed afresh by the next (`custos reindex`: up to −10%
/// CPU, +12% peak memory; README, Performance). A `MIMALLOC_PURGE_DELAY` the
/// operator sets wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        #[allow(unsafe_code)]
        // SAFETY: stores one integer in mimalloc's option table; called first
        // in `main`, before any other thread exists.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000);
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        // Logs go to stderr: stdout carries results (verify, replay --json).
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify { path, key, witness } => {
            let code = verify(&path, key.as_deref());
            return if code == ExitCode::SUCCESS && !witness.is_empty() { witnesses(&path, &witness) } else { code };
        }
        Command::User { action, name, role, printed_name, data_dir, json, config, not_temporary, token_days } => {
            match (action.as_str(), name) {
                ("list", None) => user_list(&data_dir, json, config.as_deref()),
                ("list", Some(_)) => Err(anyhow::anyhow!("user list takes no NAME: it lists every account")),
                (_, Some(_)) if json => Err(anyhow::anyhow!("--json is for user list")),
                (_, Some(_)) if config.is_some() => Err(anyhow::anyhow!("--config is for user list")),
                (action, Some(_)) if not_temporary && !matches!(action, "add" | "passwd") => {
                    Err(anyhow::anyhow!("--not-temporary is for user add and user passwd"))
                }
                (action, Some(_)) if token_days.is_some() && !matches!(action, "add" | "token") => {
                    Err(anyhow::anyhow!("--token-days is for user add and user token"))
                }
                (action, Some(name)) => {
                    let set_by = if not_temporary { SetBy::Holder } else { SetBy::Administrator };
                    let names = UserNames { role: role.as_deref(), printed_name: printed_name.as_deref() };
                    user(action, &name, names, set_by, token_days, &data_dir)
                }
                (action, None) => Err(anyhow::anyhow!("user {action} needs a NAME")),
            }
        }
        Command::Evidence { action: EvidenceAction::Export { data_dir, from, to, asset, incident, reason, out } } => {
            let sel = custos::evidence::Selection { from, to, asset, incident, reason };
            runtime().and_then(|rt| rt.block_on(evidence_export(&data_dir, &sel, &out)))
        }
        Command::Keygen { out, origin } => keygen(&out, &origin),
        Command::Reindex { data_dir } => reindex(&data_dir),
        Command::Rules { action, dir, inventory } => return rules(&action, &dir, inventory.as_deref()),
        Command::Demo { data_dir, http, tick_seconds, alarm_syslog, alarm_webhook } => {
            let alarms = custos::alarms::AlarmsConfig {
                syslog: alarm_syslog.map(custos::alarms::SyslogTarget::plain),
                webhook: alarm_webhook.map(custos::alarms::WebhookTarget::new),
                ..Default::default()
            };
            let opts = DemoOptions { data_dir, http, tick_seconds, bus: None, alarms };
            runtime().and_then(|rt| rt.block_on(run_demo(opts)))
        }
        Command::Replay { source, data_dir, inventory, mapping, json, files } => {
            runtime().and_then(|rt| rt.block_on(replay(&source, data_dir, inventory, mapping, json, files)))
        }
        Command::Bench(args) => runtime().and_then(|rt| rt.block_on(bench(args))),
        Command::Run { config, roles } => runtime().and_then(|rt| rt.block_on(run(&config, &roles))),
        Command::Probe { url, timeout_seconds } => runtime().and_then(|rt| rt.block_on(probe(&url, timeout_seconds))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custos: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `custos rules lint|test DIR`: exit 0 when every rule compiles (and every
/// example passes), 1 otherwise, with one line per problem.
fn rules(action: &str, dir: &std::path::Path, inventory: Option<&std::path::Path>) -> ExitCode {
    const EXAMPLE_INVENTORY: &str = include_str!("../../deploy/config/inventory.example.toml");
    let inv = match inventory.map(std::fs::read_to_string).transpose() {
        Ok(text) => ingest::Inventory::from_toml(text.as_deref().unwrap_or(EXAMPLE_INVENTORY)),
        Err(e) => {
            eprintln!("custos: inventory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let inv = match inv {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("custos: inventory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let set = match correlate::sigma::load_dir(dir, &correlate::sigma::placeholders(&inv)) {
        Ok(set) => std::sync::Arc::new(set),
        Err(errors) => {
            for e in errors {
                println!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    match action {
        "lint" => {
            println!("{} rules ok", set.rules.len());
            ExitCode::SUCCESS
        }
        "test" => {
            let results = correlate::sigma::run_examples(&set, Some(&std::sync::Arc::new(inv)));
            let failed = results.iter().filter(|r| !r.passed()).count();
            for r in &results {
                if r.passed() {
                    println!("pass  {}  {}", r.rule, r.name);
                } else if let Some(e) = &r.error {
                    println!("FAIL  {}  {}: {e}", r.rule, r.name);
                } else {
                    println!(
                        "FAIL  {}  {}\n      expected: {:?}\n      got:      {:?}",
                        r.rule, r.name, r.expected, r.got
                    );
                }
            }
            println!("{} examples, {} passed, {failed} failed", results.len(), results.len() - failed);
            if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        other => {
            eprintln!("custos: rules {other:?}: say lint or test");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
    let _ = ctrl_c.await;
}

async fn run_demo(opts: DemoOptions) -> anyhow::Result<()> {
    let mut d = demo::start(opts).await.context("demo failed to start")?;
    let addr = d.http_addr;
    println!(
        "Custos demo running.\n  API          http://{addr}/api/v1/incidents\n  {}",
        demo::describe(&d.custos.data_dir)
    );
    println!("  syslog       udp {}  tcp {}", d.custos.syslog_udp[0], d.custos.syslog_tcp[0]);
    println!(
        "Try:  curl -s -H \"Authorization: Bearer $(cat {}/demo-token)\" http://{addr}/api/v1/incidents",
        d.custos.data_dir.display()
    );
    println!("Stop with Ctrl-C; then: custos verify {}/ledger", d.custos.data_dir.display());
    let failed = tokio::select! {
        _ = shutdown_signal() => false,
        _ = d.custos.stopped() => {
            tracing::error!("a pipeline stage stopped");
            true
        }
    };
    println!("stopping: draining the pipeline into the ledger…");
    d.shutdown().await.context("clean shutdown failed")?;
    anyhow::ensure!(!failed, "a pipeline stage stopped (see the error above)");
    Ok(())
}

async fn probe(url: &str, timeout_seconds: f64) -> anyhow::Result<()> {
    let target = custos::health::ProbeUrl::parse(url).map_err(|e| anyhow::anyhow!("probe: {e}"))?;
    let timeout = std::time::Duration::try_from_secs_f64(timeout_seconds)
        .ok()
        .filter(|t| !t.is_zero() && t.as_secs() <= 3_600)
        .ok_or_else(|| anyhow::anyhow!("--timeout-seconds: more than 0 and at most 3600, not {timeout_seconds}"))?;
    let answer = custos::health::probe(&target, timeout).await?;
    if (200..300).contains(&answer.status) {
        println!("{}", answer.body.trim_end());
        Ok(())
    } else {
        anyhow::bail!("probe {url}: {} {}", answer.status, answer.body.trim_end())
    }
}

async fn run(config: &std::path::Path, roles: &str) -> anyhow::Result<()> {
    let cfg = Config::load(config)?;
    let roles = Roles::parse(roles).map_err(|e| anyhow::anyhow!("--roles: {e}"))?;
    let mut hup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    // Under systemd (`Type=notify`): the watchdog from now, as a start may
    // replay a long ledger; READY once serving, STOPPING once draining.
    let systemd = custos::systemd::Notifier::from_env().map(std::sync::Arc::new);
    if let Some(n) = &systemd {
        n.clone().spawn_watchdog();
    }
    let notify = |notice| {
        if let Some(n) = &systemd {
            n.notify(notice);
        }
    };
    if !roles.evidence {
        let name = cfg.collector.name();
        let mut node = IngestNode::start(cfg).await.context("custos (ingest) failed to start")?;
        let status = format!("collector {name}: sources open, sending to the bus");
        notify(custos::systemd::Notice::Ready { status: &status });
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        let mut failed = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = node.stopped() => {
                    tracing::error!("the normaliser stopped");
                    failed = true;
                    break;
                }
                // SIGHUP reloads the inventory enrichment uses (a bad file is refused).
                Some(()) = hup.recv() => match node.reload_inventory() {
                    Ok(()) => tracing::info!("SIGHUP: inventory reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: inventory refused; the running one stays"),
                },
            }
        }
        notify(custos::systemd::Notice::Stopping { status: "stopping the sources" });
        node.shutdown().await.context("clean shutdown failed")?;
        // A failure exit, so that the service manager starts it again.
        anyhow::ensure!(!failed, "the normaliser stopped (see the error above); the next start reads on from Kafka");
        return Ok(());
    }
    let mut c = Custos::start_with_roles(cfg, roles).await.context("custos failed to start")?;
    let api = c.http_addr.map_or_else(|| "no API".to_owned(), |a| format!("API on {a}"));
    let status = format!("serving: ledger of {} records, {api}", c.ledger.size());
    notify(custos::systemd::Notice::Ready { status: &status });
    // SIGHUP reloads the inventory, then the rules. The evidence stage logs
    // and audits each outcome; what is refused leaves what runs in place.
    let reload = c.reload.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = reload.inventory("SIGHUP").await;
            let _ = reload.rules("SIGHUP").await;
        }
    });
    let failed = tokio::select! {
        _ = shutdown_signal() => false,
        _ = c.stopped() => {
            tracing::error!("a pipeline stage stopped");
            true
        }
    };
    notify(custos::systemd::Notice::Stopping { status: "draining the pipeline into the ledger" });
    c.shutdown().await.context("clean shutdown failed")?;
    // A failure exit, so that the service manager starts it again.
    anyhow::ensure!(!failed, "a pipeline stage stopped (see the error above)");
    Ok(())
}

async fn replay(
    source: &str,
    data_dir: Option<PathBuf>,
    inventory: Option<PathBuf>,
    mapping: Option<PathBuf>,
    json: bool,
    files: Vec<PathBuf>,
) -> anyhow::Result<()> {
    let format = ingest::Format::from_name(source).ok_or_else(|| {
        let names: Vec<&str> = ingest::Format::ALL.iter().map(|f| f.name()).collect();
        anyhow::anyhow!("--source {source:?} is not a format; one of: {}", names.join(", "))
    })?;
    let inv = match &inventory {
        Some(p) => ingest::Inventory::from_toml(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )?,
        None => ingest::Inventory::default(),
    };
    let mapping: Option<ingest::parse::pacs::BadgeMapping> = match &mapping {
        Some(p) => Some(
            toml::from_str(&std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?)
                .with_context(|| format!("{}", p.display()))?,
        ),
        None => None,
    };
    anyhow::ensure!(format != ingest::Format::BadgeCsv || mapping.is_some(), "--source badge-csv needs --mapping FILE");
    let r = custos::replay::Replay {
        format,
        files,
        inventory: std::sync::Arc::new(inv),
        mapping: mapping.clone(),
        source: "replay".into(),
    };
    let summary = match data_dir {
        None => r.run(|_| async { Ok(()) }).await?,
        Some(dir) => {
            let mut cfg = Config::with_data_dir(dir);
            cfg.inventory = inventory;
            if let Some(m) = mapping {
                cfg.ingest.mappings.insert("replay".into(), m);
            }
            let c = Custos::start_with_roles(cfg, Roles { ingest: true, evidence: true, api: false })
                .await
                .context("custos failed to start")?;
            let raw = c.raw_publisher().context("no raw topic")?;
            let s = r
                .run(|batch| {
                    let raw = raw.clone();
                    async move { raw.publish(batch).await.map_err(std::io::Error::other) }
                })
                .await?;
            drop(raw);
            c.shutdown().await.context("clean shutdown failed")?;
            s
        }
    };
    if json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "format": source, "summary": summary }))?);
    } else {
        print!("{source}: {summary}");
    }
    Ok(())
}

/// `custos bench WHAT`.
#[derive(clap::Args)]
struct BenchArgs {
    /// What to measure: `tcp-syslog`, `ledger` or `views` (search and SQL).
    what: String,
    /// ledger: records to append; views: events to index.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// ledger: directory to write in (default: a temporary one, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Concurrent sender connections.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Also parse and enrich every record (the normaliser).
    #[arg(long)]
    normalize: bool,
    /// views: `synthetic` (short hand-made events) or `parsed` (a plant's
    /// mix made by the real parsers and normaliser; longer records).
    #[arg(long, default_value = "synthetic")]
    events: String,
    /// ledger: also sign this many checkpoints (one per single-record
    /// append, as a quiet day's per-second checkpoints) before reopening.
    #[arg(long, default_value_t = 0)]
    checkpoints: u64,
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs { what, seconds, connections, normalize, records, dir, events, checkpoints } = args;
    let (what, events) = (what.as_str(), events.as_str());
    if what == "ledger" {
        let scratch = std::env::temp_dir().join(format!("custos-bench-ledger-{}", std::process::id()));
        let remove = dir.is_none();
        let dir = dir.unwrap_or_else(|| scratch.clone());
        println!(
            "ledger: {records} records, 8 appenders, batches of 1000, then {checkpoints} single-record appends each signed, in {}",
            dir.display()
        );
        let f = custos::bench::ledger(&dir, records, 200, 8, 1000, checkpoints).await?;
        println!("  record size       {} bytes (canonical JSON)", f.record_bytes);
        println!("  appends           {:.0} records/s (every batch synced before it is acknowledged)", f.appends_per_s);
        println!(
            "  reopen            {:.2} s, {:.2} s, {:.2} s, peak {:.0} MiB (reads and checks every record, rebuilds the tree hashes)",
            f.open_s[0], f.open_s[1], f.open_s[2], f.open_peak_mib
        );
        println!(
            "  checkpoints       {} signed, {:.1} MiB of notes",
            f.checkpoints,
            f.checkpoint_bytes as f64 / 1048576.0
        );
        println!("  custos verify     {:.0} records/s", f.verify_records_per_s);
        println!(
            "  inclusion proof   p50 {:.1} µs, p99 {:.1} µs (at {} records)",
            f.proof_p50_us, f.proof_p99_us, f.records
        );
        println!(
            "  export's view     {:.0} µs median (Ledger::snapshot: the stored hashes shared, not copied)",
            f.snapshot_us
        );
        println!("  storage overhead  {:.1} % over the records' bytes", f.storage_overhead * 100.0);
        if remove {
            std::fs::remove_dir_all(&scratch).with_context(|| format!("remove {}", scratch.display()))?;
        }
        return Ok(());
    }
    if what == "views" {
        let scratch = std::env::temp_dir().join(format!("custos-bench-views-{}", std::process::id()));
        let remove = dir.is_none();
        let dir = dir.unwrap_or_else(|| scratch.clone());
        let kind = match events {
            "synthetic" => custos::bench::BenchEvents::Synthetic,
            "parsed" => custos::bench::BenchEvents::Parsed,
            other => anyhow::bail!("unknown --events {other:?}: synthetic or parsed"),
        };
        println!(
            "views: {records} {events} events over 30 days into a ledger, then search index and archive, in {}",
            dir.display()
        );
        let f = custos::bench::views(&dir, records, kind).await?;
        println!(
            "  indexing          {:.0} events/s (custos reindex: read the ledger, decode, index, archive)",
            f.indexed_per_s
        );
        println!(
            "  on disk           ledger {:.0} MiB ({:.0} bytes per event), index {:.0} MiB, archive {:.0} MiB",
            f.ledger_bytes as f64 / 1048576.0,
            f.ledger_bytes as f64 / f.records.max(1) as f64,
            f.index_bytes as f64 / 1048576.0,
            f.archive_bytes as f64 / 1048576.0
        );
        for (q, p50, p99, hits) in &f.searches {
            println!("  search  p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  {hits:>9} hits  {q}");
        }
        for (q, runs) in &f.sql {
            let list: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
            println!("  sql     {} ms  {q}", list.join(" / "));
        }
        if remove {
            std::fs::remove_dir_all(&scratch).with_context(|| format!("remove {}", scratch.display()))?;
        }
        return Ok(());
    }
    anyhow::ensure!(what == "tcp-syslog", "unknown bench {what:?}: tcp-syslog, ledger or views");
    println!("tcp-syslog: {connections} sender connection(s), {seconds} s, normalise: {normalize}");
    let samples = custos::bench::tcp_syslog(seconds, connections, normalize, std::time::Duration::from_secs(5), |s| {
        println!("  t={:>6.1}s  {:>10.0} records/s  rss {:>7.1} MiB", s.at_s, s.records_per_s, s.rss_mib);
    })
    .await?;
    // The first interval includes start-up; the rest is the sustained rate.
    let steady: Vec<&custos::bench::Sample> = samples.iter().skip(1).collect();
    if !steady.is_empty() {
        let mean = steady.iter().map(|s| s.records_per_s).sum::<f64>() / steady.len() as f64;
        let min = steady.iter().map(|s| s.records_per_s).fold(f64::MAX, f64::min);
        let (rss0, rss1) = (steady[0].rss_mib, steady[steady.len() - 1].rss_mib);
        println!("sustained: mean {mean:.0} records/s, min {min:.0}; rss {rss0:.1} → {rss1:.1} MiB");
    }
    Ok(())
}

/// Appends what `custos user` did about `name` (empty: every account) to the
/// log the running service ledgers as `audit` records.
fn log_account_change(
    data_dir: &std::path::Path,
    action: &str,
    name: &str,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let change = custos::account_changes::Change {
        time: ingest::source::now_millis(),
        by: custos::audit::command_line_user(),
        action: action.to_owned(),
        name: name.to_owned(),
        details,
    };
    custos::account_changes::AccountChanges::in_dir(data_dir)
        .append(&change)
        .context("log it for the audit trail (account-changes.jsonl)")
}

/// `custos user list`: the access review, as a table or JSON; logged for the
/// audit trail as `accounts.read`, as the API's is (a periodic review is
/// itself evidence an inspector asks for).
fn user_list(data_dir: &std::path::Path, json: bool, config: Option<&std::path::Path>) -> anyhow::Result<()> {
    anyhow::ensure!(data_dir.is_dir(), "no data directory {}", data_dir.display());
    // Password ageing is the service's setting: without it, nothing expires here.
    let policy = match config {
        Some(path) => {
            let cfg = Config::load(path)?;
            let same = |p: &std::path::Path| std::fs::canonicalize(p).ok();
            anyhow::ensure!(
                same(&cfg.data_dir) == same(data_dir),
                "{} has data_dir {}, not --data-dir {}",
                path.display(),
                cfg.data_dir.display(),
                data_dir.display()
            );
            Some(cfg.accounts.policy())
        }
        None => None,
    };
    let ageing = policy.as_ref().is_some_and(|p| p.max_age_ms > 0);
    let accounts =
        custos::accounts::AccountStore::open(data_dir.join("accounts.json"))?.with_policy(policy.unwrap_or_default());
    let tokens = custos::auth::TokenStore::open(data_dir.join("tokens.json"))?;
    let now = ingest::source::now_millis();
    let review = custos::accounts::AccessReview::at(Some(&accounts), &tokens, now);
    let counts = serde_json::json!({"accounts": review.accounts.len(), "token_holders": review.token_holders.len()});
    log_account_change(data_dir, "accounts.read", "", counts)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&review)?);
        return Ok(());
    }
    let expires_header = if ageing { format!("{:<10} ", "EXPIRES") } else { String::new() };
    println!(
        "{:<20} {:<17} {:<28} {:<24} {:<10} {expires_header}STATE",
        "ACCOUNT", "ROLE", "PRINTED NAME", "LAST LOGIN", "PASSWORD"
    );
    for a in &review.accounts {
        let state = match (&a.locked_until, a.disabled) {
            (_, true) => "disabled".to_owned(),
            (Some(until), false) => format!("locked until {until}"),
            (None, false) => "enabled".to_owned(),
        };
        let last = a.last_login.as_deref().unwrap_or("never");
        // Temporary (an administrator set it), or the day its holder chose it.
        let password = match (&a.password_set_at, a.temporary_password) {
            (_, true) => "temporary",
            (Some(at), false) => day(at),
            (None, false) => "unknown",
        };
        // The day the password stops signing and logging in fully, with ageing on.
        let expires = match (ageing, &a.password_expires_at) {
            (false, _) => String::new(),
            (true, Some(at)) => format!("{:<10} ", day(at)),
            (true, None) => format!("{:<10} ", "-"),
        };
        println!(
            "{:<20} {:<17} {:<28} {last:<24} {password:<10} {expires}{state}",
            a.name,
            a.role.name(),
            a.printed_name
        );
    }
    println!();
    println!("{:<20} {:<17} {:<9} SESSIONS", "TOKEN HOLDER", "ROLE", "API TOKEN");
    for h in &review.token_holders {
        // Yes, no, or the day a token issued for a time stops working.
        let api = match (&h.api_token_valid_until, h.api_token) {
            (Some(until), true) => day(until),
            (None, true) => "yes",
            (_, false) => "no",
        };
        println!("{:<20} {:<17} {api:<9} {}", h.name, h.role.name(), h.sessions);
    }
    Ok(())
}

/// `custos user add|passwd|token|disable`: accounts (argon2 password hashes)
/// and API tokens; each change logged for the audit trail.
/// The day of an RFC 3339 time, for the review's columns.
fn day(rfc3339: &str) -> &str {
    rfc3339.get(..10).unwrap_or(rfc3339)
}

/// `custos user add`'s `--role` and `--printed-name`.
struct UserNames<'a> {
    role: Option<&'a str>,
    printed_name: Option<&'a str>,
}

fn user(
    action: &str,
    name: &str,
    UserNames { role, printed_name }: UserNames,
    set_by: SetBy,
    token_days: Option<u32>,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let read_password = || -> anyhow::Result<String> {
        let mut password = String::new();
        std::io::stdin().read_line(&mut password).context("read the password from standard input")?;
        Ok(password.trim_end_matches(['\r', '\n']).to_owned())
    };
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let accounts = custos::accounts::AccountStore::open(data_dir.join("accounts.json"))?;
    let tokens = custos::auth::TokenStore::open(data_dir.join("tokens.json"))?;
    let logged = |action: &str, details| log_account_change(data_dir, action, name, details);
    let now = ingest::source::now_millis();
    let temporary = set_by == SetBy::Administrator;
    let valid_until = token_days.map(|d| now + i64::from(d) * 86_400_000);
    // Said with the token, and logged with the change.
    let until = valid_until.map(ingest::time::format_rfc3339);
    let until_said = until.as_ref().map(|u| format!(" until {u}")).unwrap_or_default();
    const TEMPORARY: &str =
        "; the password is temporary: its holder chooses their own at the next login, and it signs nothing until then";
    let enabled = || -> anyhow::Result<custos::accounts::Account> {
        let a = accounts.get(name).ok_or_else(|| anyhow::anyhow!("no account {name}"))?;
        anyhow::ensure!(!a.is_disabled(), "account {name} is disabled; `custos user add` makes it anew");
        Ok(a)
    };
    match action {
        "add" => {
            let (Some(role), Some(printed_name)) = (role, printed_name) else {
                anyhow::bail!("user add needs --role and --printed-name");
            };
            let role = custos::auth::Role::named(role).ok_or_else(|| {
                let roles: Vec<&str> = custos::auth::Role::ALL.iter().map(|r| r.name()).collect();
                anyhow::anyhow!("--role {role:?}: one of {}", roles.join(", "))
            })?;
            let before = accounts.get(name).map(|a| (a.role, a.printed_name));
            accounts.set(name, printed_name, role, &read_password()?, set_by, now)?;
            let token = tokens.issue_valid_until(name, role, valid_until)?;
            let was =
                before.map(|(role, printed_name)| serde_json::json!({"role": role, "printed_name": printed_name}));
            let details = serde_json::json!({"role": role, "printed_name": printed_name, "replaced": was, "temporary": temporary, "token_valid_until": until});
            logged("account.add", details)?;
            println!("{token}");
            eprintln!(
                "account {name} ({printed_name}, {}) saved; the line above is the API token (shown once, valid until {}){}",
                role.name(),
                until.as_deref().unwrap_or("replaced"),
                if temporary { TEMPORARY } else { "" }
            );
        }
        "passwd" => {
            let a = enabled()?;
            accounts.set(name, &a.printed_name, a.role, &read_password()?, set_by, now)?;
            logged("account.password", serde_json::json!({"temporary": temporary}))?;
            eprintln!("password of {name} changed{}", if temporary { TEMPORARY } else { "" });
        }
        "token" => {
            let a = enabled()?;
            let token = tokens.issue_valid_until(name, a.role, valid_until)?;
            logged("account.token", serde_json::json!({"token_valid_until": until}))?;
            println!("{token}");
            eprintln!("a new API token for {name}{until_said}; the old one no longer works");
        }
        "disable" => {
            // Disabled first: a login racing this gets no session that the
            // revoke below misses (see `AccountStore::start_session`).
            accounts.disable(name)?;
            let ended = tokens.revoke(name)?;
            logged("account.disable", serde_json::json!({"tokens_ended": ended}))?;
            eprintln!("account {name} disabled: {ended} token(s) ended; it can no longer log in or sign");
        }
        other => anyhow::bail!("user {other:?}: say add, passwd, token, disable or list"),
    }
    Ok(())
}

async fn evidence_export(
    data_dir: &std::path::Path,
    sel: &custos::evidence::Selection,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let key_path = data_dir.join("keys").join("ledger.key");
    let key = std::fs::read_to_string(&key_path).with_context(|| format!("signing key {}", key_path.display()))?;
    let signer = NoteSigner::parse(&key)?;
    let ledger_dir = data_dir.join("ledger");
    // Holding the ledger open keeps a running Custos from writing meanwhile,
    // and records the export in it.
    let (ledger, _) = ledger::Ledger::open(&ledger_dir, signer.name(), NoteSigner::parse(&key)?, Default::default())
        .context("the export needs the ledger to itself (stop Custos first)")?;
    let by = custos::audit::command_line_user();
    let started = std::time::Instant::now();
    // Written beside `out` and renamed when whole: a failed export leaves no file.
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    // Made readable as `File::create` would (0666 less the umask), not 0600: an inspector may be another user.
    let mut made = tempfile::Builder::new();
    #[cfg(unix)]
    made.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let file = made.tempfile_in(dir).with_context(|| format!("write in {}", dir.display()))?;
    let (file, path) = file.into_parts();
    let snap = ledger.snapshot()?;
    let in_force = custos::in_force::history(data_dir, &snap)?;
    let export = custos::evidence::export(&snap, sel, &by, &signer, file, &in_force.records)?;
    let took = started.elapsed();
    export.file.sync_all().with_context(|| format!("write {}", out.display()))?;
    path.persist(out).with_context(|| format!("write {}", out.display()))?;
    let mut details = export.audit_details(sel);
    details["file"] = out.display().to_string().into();
    let entry = custos::audit::Entry {
        actor: &by,
        printed_name: None,
        role: None,
        action: "evidence.export",
        reason: sel.reason.as_deref().unwrap_or_default(),
        details,
    };
    ledger.append(vec![custos::audit::encode(&entry)?]).await?;
    ledger.close().await?;
    println!(
        "{}: {} records with inclusion proofs against the signed tree of size {}; sha256 {} (made in {:.2} s)",
        out.display(),
        export.records,
        export.tree_size,
        export.sha256,
        took.as_secs_f64()
    );
    Ok(())
}

/// `--witness`: every cosignature by these witnesses must verify; prints how
/// many checkpoints each cosigned.
fn witnesses(path: &std::path::Path, keys: &[String]) -> ExitCode {
    let mut parsed = Vec::new();
    for k in keys {
        match ledger::WitnessKey::parse(&std::fs::read_to_string(k).unwrap_or_else(|_| k.clone())) {
            Ok(w) => parsed.push(w),
            Err(e) => {
                eprintln!("custos verify: --witness: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut counts = vec![0usize; parsed.len()];
    let mut count = |note: &str| -> Result<(), ledger::LedgerError> {
        for (name, _) in ledger::cosignatures(note, &parsed)? {
            if let Some(i) = parsed.iter().position(|w| w.name == name) {
                counts[i] += 1;
            }
        }
        Ok(())
    };
    let checked = if path.is_file() {
        // A bundle has one checkpoint.
        std::fs::File::open(path)
            .map_err(|e| ledger::LedgerError::Io { path: path.to_owned(), what: "read".into(), source: e })
            .and_then(ledger::bundle_checkpoint)
            .and_then(|n| count(&n))
            .map(|()| 1)
    } else {
        ledger::for_each_checkpoint_note(path, count)
    };
    let checked = match checked {
        Ok(n) => n,
        Err(e) => {
            eprintln!("FAILED: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (w, n) in parsed.iter().zip(counts) {
        println!("  witness {} cosigned {n} of {checked} checkpoints", w.name);
    }
    ExitCode::SUCCESS
}

fn verify(path: &std::path::Path, key: Option<&str>) -> ExitCode {
    let trusted = match key.map(|k| std::fs::read_to_string(k).unwrap_or_else(|_| k.to_owned())) {
        None => None,
        Some(text) => match VerifierKey::parse(&text) {
            Ok(k) => Some(vec![k]),
            Err(e) => {
                eprintln!("custos verify: --key: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if path.is_file() {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("custos verify: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        return match custos::evidence::verify_bundle(file, trusted.as_deref()) {
            Ok((r, in_force)) => {
                println!(
                    "OK: evidence bundle of {} records, each in the signed tree of size {} (origin {})",
                    r.records, r.tree_size, r.origin
                );
                for (kind, n) in &r.kinds {
                    println!("  {kind:<11} {n}");
                }
                for k in &r.signed_by {
                    println!("  checkpoint signed by {k}");
                }
                in_force.iter().for_each(|l| println!("{l}"));
                if trusted.is_none() {
                    println!("note: trusted the keys in the bundle; pass --key to pin the expected key");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("custos verify: {}: {e}", path.display());
                ExitCode::FAILURE
            }
        };
    }
    // A progress line on a terminal; nothing when the output is a pipe or a file.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = std::time::Instant::now();
    let mut last = started;
    let mut progress = |done: u64, total: u64| {
        if tty && (last.elapsed().as_millis() >= 500 || done == total) {
            last = std::time::Instant::now();
            let pct = if total == 0 { 100.0 } else { done as f64 * 100.0 / total as f64 };
            eprint!(
                "\rverifying: {pct:5.1} % of {:.1} MiB, {:.0} s",
                total as f64 / 1_048_576.0,
                started.elapsed().as_secs_f64()
            );
            if done == total {
                eprintln!();
            }
        }
    };
    match ledger::verify_dir_with_progress(path, trusted.as_deref(), &mut progress) {
        Ok(r) => {
            println!("OK: {} records, {} signed checkpoints, origin {}", r.records, r.checkpoints, r.origin);
            for (kind, n) in &r.kinds {
                println!("  {kind:<11} {n}");
            }
            for k in &r.keys {
                println!("  key {k}");
            }
            if r.unsigned_tail() > 0 {
                println!(
                    "warning: {} records after the newest checkpoint are not yet signed (unclean stop?)",
                    r.unsigned_tail()
                );
            }
            if trusted.is_none() {
                println!("note: trusted the keys listed in the ledger; pass --key to pin the expected key");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The message names the first bad index when there is one.
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(out: &std::path::Path, origin: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let signer = NoteSigner::generate(origin)?;
    let key = out.join("ledger.key");
    anyhow::ensure!(!key.exists(), "{} exists; refusing to overwrite a signing key", key.display());
    custos::pipeline::write_private(&key, signer.encode().as_bytes())?;
    let vkey = out.join("ledger.vkey");
    std::fs::write(&vkey, format!("{}\n", signer.verifier().encode()))
        .with_context(|| format!("cannot write {}", vkey.display()))?;
    println!("wrote {} (secret) and {}", key.display(), vkey.display());
    Ok(())
}

fn reindex(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let n = custos::follow::reindex(data_dir, |i| eprint!("\rreindexing: {i} records"))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("\r\x1b[K");
    println!(
        "reindexed {n} ledger records into {} and {} in {secs:.1} s ({:.0} records/s)",
        data_dir.join("index").display(),
        data_dir.join("archive").display(),
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(unsafe_code)]
    fn freed_memory_is_kept_ten_seconds() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one integer option (this test binary's only test).
        let purge_delay = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(purge_delay(), 1_000, "option 15 is mimalloc's purge delay, 1 s by default");
        super::keep_freed_memory();
        assert_eq!(purge_delay(), 10_000);
    }
}
