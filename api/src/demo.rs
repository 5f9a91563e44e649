//! `custos demo`: Custos on its embedded default plus a simulated filling line
//! that talks to it through the real transports — syslog datagrams and a TCP
//! stream to its own listeners, Suricata EVE lines appended to a file, badge
//! events pushed over HTTP, and PLC backups written into a backup directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ingest::Format;
use ingest::source::now_millis;
use ingest::source::plc::PlcWatchConfig;
use ingest::source::syslog::{SyslogTcpConfig, SyslogUdpConfig};
use ingest::source::tail::FileTailConfig;
use ingest::time::format_rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Role;
use crate::config::{BusConfig, HttpPushConfig};
use crate::pipeline::write_private;
use crate::{Config, Custos, Error};

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Data directory; a fresh one under the system temp dir when `None`.
    pub data_dir: Option<PathBuf>,
    pub http: SocketAddr,
    /// Seconds of simulated plant time per tick; 1.0 for people, smaller in tests.
    pub tick_seconds: f64,
    /// The bus; the embedded one unless given.
    pub bus: Option<BusConfig>,
    /// Control-room alarm forwarding (none by default).
    pub alarms: crate::alarms::AlarmsConfig,
}

/// A running demo.
pub struct Demo {
    pub custos: Custos,
    pub http_addr: SocketAddr,
    pub admin_token: String,
    stop: watch::Sender<bool>,
    plant: JoinHandle<()>,
}

impl Demo {
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        let _ = self.plant.await;
        self.custos.shutdown().await
    }
}

/// The shipped example inventory, which the demo plant is built on.
const EXAMPLE_INVENTORY: &str = include_str!("../../deploy/config/inventory.example.toml");
/// The example's fixed window; the demo moves it around `now` so it covers this run.
const EXAMPLE_FROM: &str = "2026-12-01T06:00:00Z";
const EXAMPLE_TO: &str = "2026-12-01T18:00:00Z";

/// The demo plant's inventory: the example inventory, with its maintenance
/// window and change ticket around `now` (so they cover this run).
pub fn inventory_toml(now: i64) -> String {
    let body = EXAMPLE_INVENTORY
        .replace(EXAMPLE_FROM, &format_rfc3339(now - 3_600_000))
        .replace(EXAMPLE_TO, &format_rfc3339(now + 12 * 3_600_000));
    format!("# Written by `custos demo` on each start from deploy/config/inventory.example.toml.\n{body}")
}

const PLCS: [&str; 3] = ["PLC-01", "PLC-02", "PLC-03"];

fn released_files(asset: &str) -> [(&'static str, String); 3] {
    [
        ("blocks/OB1.awl", format!("// {asset} main cycle\nA I 0.0\n= Q 0.0\n")),
        ("blocks/DB10.db", "fill_volume_ml := 500;\n".to_owned()),
        ("hw/config.xml", "<rack slots=\"8\"/>\n".to_owned()),
    ]
}

/// Starts Custos with the demo configuration and the simulated plant.
pub async fn start(opts: DemoOptions) -> Result<Demo, Error> {
    let data_dir = match opts.data_dir {
        Some(d) => d,
        None => {
            let mut r = [0u8; 4];
            let _ = getrandom::fill(&mut r);
            std::env::temp_dir().join(format!("custos-demo-{}", hex::encode(r)))
        }
    };
    let plant_dir = data_dir.join("plant");
    let backups = plant_dir.join("plc-backups");
    for asset in PLCS {
        for (rel, text) in released_files(asset) {
            let path = backups.join(asset).join("released").join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
            }
            std::fs::write(&path, text).map_err(Error::io("write", &path))?;
        }
    }
    let inventory = data_dir.join("inventory.toml");
    std::fs::write(&inventory, inventory_toml(now_millis())).map_err(Error::io("write", &inventory))?;
    let eve = plant_dir.join("eve.json");

    let mut cfg = Config::with_data_dir(data_dir.clone());
    cfg.http.listen = opts.http;
    cfg.inventory = Some(inventory);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.sources.syslog_udp.push(SyslogUdpConfig { listen: loopback, name: "syslog-udp".into() });
    cfg.sources.syslog_tcp.push(SyslogTcpConfig {
        listen: loopback,
        name: "syslog-tcp".into(),
        max_frame: 64 * 1024,
        tls: None,
    });
    cfg.sources.file.push(FileTailConfig {
        name: "suricata".into(),
        path: eve.clone(),
        format: Format::SuricataEve,
        poll_ms: 100,
        max_line: 1 << 20,
        mapping: None,
    });
    cfg.sources.http.push(HttpPushConfig { name: "badge".into(), format: Format::BadgeJson });
    cfg.sources.plc_backup.push(PlcWatchConfig { dir: backups.clone(), name: "plc-backup".into(), poll_ms: 500 });
    // A lively demo: short lateness and idle timeout so absence rules decide quickly.
    cfg.correlate.allowed_lateness_ms = 2_000;
    cfg.correlate.idle_timeout_ms = 10_000;
    cfg.alarms = opts.alarms;

    if let Some(bus) = opts.bus {
        cfg.bus = bus;
    }
    let custos = Custos::start(cfg).await?;
    let http_addr = custos.http_addr.ok_or_else(|| Error::Roles("the demo serves the API".into()))?;
    let token_path = data_dir.join("demo-token");
    let admin_token = match std::fs::read_to_string(&token_path) {
        Ok(t) if !t.trim().is_empty() => {
            let t = t.trim().to_owned();
            custos.tokens.add("demo-admin", Role::Admin, &t).map_err(Error::io("store token", &token_path))?;
            t
        }
        _ => {
            let t = custos.tokens.issue("demo-admin", Role::Admin).map_err(Error::io("store token", &token_path))?;
            write_private(&token_path, t.as_bytes())?;
            t
        }
    };
    let collector_token =
        custos.tokens.issue("demo-plant-pacs", Role::Collector).map_err(Error::io("store token", &token_path))?;
    let plant = Plant {
        udp_target: custos.syslog_udp[0],
        tcp_target: custos.syslog_tcp[0],
        http: http_addr,
        collector_token,
        eve,
        backups,
    };
    let (stop, stop_rx) = watch::channel(false);
    let tick = Duration::from_secs_f64(opts.tick_seconds.max(0.01));
    let plant = tokio::spawn(async move {
        if let Err(e) = plant.run(tick, stop_rx).await {
            tracing::error!(error = %e, "demo plant stopped");
        }
    });
    Ok(Demo { custos, http_addr, admin_token, stop, plant })
}

struct Plant {
    udp_target: SocketAddr,
    tcp_target: SocketAddr,
    http: SocketAddr,
    collector_token: String,
    eve: PathBuf,
    backups: PathBuf,
}

impl Plant {
    async fn run(self, tick: Duration, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        udp.connect(self.udp_target).await?;
        let mut tcp = TcpStream::connect(self.tcp_target).await?;
        let mut eve = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.eve).await?;
        let mut interval = tokio::time::interval(tick);
        for k in 0u64.. {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            let now = now_millis();
            let ts = format_rfc3339(now);
            // Background: firewall traffic and Modbus polling by the HMI.
            let fw = format!(
                r#"<189>1 {ts} fgt-cell1 - - - - date={} time={} devname="FGT-CELL1" devid="FG100FTK20000001" eventtime={}000000 tz="+0000" logid="0000000013" type="traffic" subtype="forward" level="notice" srcip=10.10.1.30 srcport={} dstip=10.10.1.10 dstport=502 proto=6 action="accept" policyid=12 service="Modbus" sentbyte=180 rcvdbyte=96"#,
                &ts[..10],
                &ts[11..19],
                now,
                40_000 + k % 20_000
            );
            udp.send(fw.as_bytes()).await?;
            let flow = format!(
                r#"{{"timestamp":"{ts}","flow_id":{k},"event_type":"flow","src_ip":"10.10.1.30","src_port":{},"dest_ip":"10.10.1.10","dest_port":502,"proto":"TCP","app_proto":"modbus","flow":{{"pkts_toserver":4,"pkts_toclient":4,"bytes_toserver":280,"bytes_toclient":260,"state":"closed"}}}}"#,
                40_000 + k % 20_000
            );
            let read = modbus_line(&ts, "10.10.1.30", 3, "READ | HOLDING");
            eve.write_all(format!("{flow}\n{read}\n").as_bytes()).await?;
            if k % 4 == 0 {
                // Alice badges into the control room and its door contact reports the door open.
                self.badge(&ts, "1001", "CR-DOOR-1", "granted", None).await?;
                self.badge(&ts, "", "CR-DOOR-1", "door_opened", None).await?;
            }
            if k % 4 == 2 {
                self.badge(&ts, "3003", "LAB-DOOR", "granted", None).await?;
            }
            if k % 5 == 1 {
                // Alice (badged in) logs on to her engineering workstation: normal.
                let line = format!(
                    "<14>{} ews-01 win-evtlog: CEF:0|Microsoft|Microsoft Windows|10.0|4624|An account was successfully logged on|3|rt={now} duser=alice dhost=ews-01 dst=10.10.1.20 cs2Label=LogonType cs2=2\n",
                    rfc3164(now)
                );
                tcp.write_all(line.as_bytes()).await?;
            }
            match k {
                2 => {
                    // Inside PLC-02's maintenance window, and PLC-03 unchanged: no alert.
                    self.backup("PLC-02", now, "alice", true)?;
                    self.backup("PLC-03", now, "alice", false)?;
                }
                3 => self.badge(&ts, "", "CR-DOOR-1", "forced", None).await?,
                4 => self.badge(&ts, "4711", "LAB-DOOR", "antipassback", None).await?,
                5..=7 => {
                    // Mallory tries the control room door three times.
                    self.badge(&ts, "4711", "CR-DOOR-1", "denied", Some("not authorised for area control-room-1"))
                        .await?
                }
                9 => {
                    let alert = format!(
                        r#"{{"timestamp":"{ts}","flow_id":9,"event_type":"alert","src_ip":"10.10.1.50","src_port":50211,"dest_ip":"10.10.1.10","dest_port":502,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":2100100,"rev":1,"signature":"ET SCADA Modbus write from non-engineering host","category":"Attempted Administrator Privilege Gain","severity":1}}}}"#
                    );
                    eve.write_all(format!("{alert}\n").as_bytes()).await?;
                }
                11 => {
                    // Someone guesses passwords at the HMI.
                    for attempt in 0..5 {
                        let line = format!(
                            "<14>{} hmi-01 win-evtlog: CEF:0|Microsoft|Microsoft Windows|10.0|4625|An account failed to log on|5|rt={} duser=operator{attempt} dhost=hmi-01 dst=10.10.1.30\n",
                            rfc3164(now),
                            now + attempt
                        );
                        tcp.write_all(line.as_bytes()).await?;
                    }
                }
                13 => {
                    // The vendor laptop polls every device in the cell (a scan).
                    let mut lines = String::new();
                    for dst in ["10.10.1.10", "10.10.1.11", "10.10.1.12", "10.10.1.20", "10.10.1.30"] {
                        lines.push_str(&modbus_to(&ts, "10.10.1.50", dst, 3, "READ | HOLDING"));
                        lines.push('\n');
                    }
                    eve.write_all(lines.as_bytes()).await?;
                }
                8 => {
                    // Mallory logs on to the EWS behind the door she was refused (octet-counted frame).
                    let msg = format!(
                        "<14>1 {ts} ews-01 Microsoft-Windows-Security-Auditing 4 4624 - CEF:0|Microsoft|Microsoft Windows|10.0|4624|An account was successfully logged on|3|rt={now} duser=mallory dhost=ews-01 dst=10.10.1.20 src=10.10.1.20 cs2Label=LogonType cs2=2"
                    );
                    tcp.write_all(format!("{} {msg}", msg.len()).as_bytes()).await?;
                }
                10 => self.backup("PLC-01", now, "unknown", true)?,
                12 => {
                    // Writes to PLC-01: from the vendor laptop (owner Bob never badged in), and from the EWS (Alice is on site).
                    let w1 = modbus_line(&ts, "10.10.1.50", 6, "WRITE | SINGLE");
                    let w2 = modbus_line(&ts, "10.10.1.20", 16, "WRITE | MULTIPLE");
                    eve.write_all(format!("{w1}\n{w2}\n").as_bytes()).await?;
                }
                17 => {
                    // Carol, last badged into the QC lab, leaves the control room by its exit
                    // reader: she came in behind Alice (tick 16).
                    self.badge(&ts, "3003", "CR-DOOR-1-EXIT", "granted", None).await?
                }
                14 => {
                    // Bad input is kept as dead letters, never dropped.
                    udp.send(b"this line has no syslog header").await?;
                    eve.write_all(b"{\"timestamp\":\"2026-11-26T10:00:00Z\",\"event_type\":\"alert\",\"truncated\n")
                        .await?;
                }
                _ => {}
            }
            eve.flush().await?;
        }
        Ok(())
    }

    /// A badge event (or the door's own report, with no badge); the
    /// inventory says which readers are exits.
    async fn badge(
        &self,
        ts: &str,
        badge: &str,
        door: &str,
        result: &str,
        reason: Option<&str>,
    ) -> std::io::Result<()> {
        let reason = reason.map(|r| format!(r#","reason":"{r}""#)).unwrap_or_default();
        let body = format!(
            r#"{{"time":"{ts}","badge":"{badge}","door":"{door}","result":"{result}","controller":"PACS-GW-1"{reason}}}"#
        );
        let (status, text) =
            http_request(self.http, "POST", "/api/v1/ingest/badge", Some(&self.collector_token), Some(body.as_bytes()))
                .await?;
        if status != 202 {
            tracing::warn!(status, body = %text, "badge push refused");
        }
        Ok(())
    }

    /// Writes a backup of `asset` as the backup tool would: files first, `backup.json` last.
    fn backup(&self, asset: &str, now: i64, user: &str, changed: bool) -> std::io::Result<()> {
        let id = format!("{}-{now}", &format_rfc3339(now)[..10]);
        let dir = self.backups.join(asset).join("backups").join(&id);
        for (rel, mut text) in released_files(asset) {
            if changed && rel.ends_with("OB1.awl") {
                text.push_str("A I 0.7\nS M 10.0\n");
            }
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, text)?;
        }
        let meta = format!(r#"{{"time":"{}","user":"{user}"}}"#, format_rfc3339(now));
        std::fs::write(dir.join("backup.json.tmp"), meta)?;
        std::fs::rename(dir.join("backup.json.tmp"), dir.join("backup.json"))
    }
}

fn modbus_line(ts: &str, src: &str, code: u8, access: &str) -> String {
    modbus_to(ts, src, "10.10.1.10", code, access)
}

fn modbus_to(ts: &str, src: &str, dst: &str, code: u8, access: &str) -> String {
    format!(
        r#"{{"timestamp":"{ts}","flow_id":7,"event_type":"modbus","src_ip":"{src}","src_port":50200,"dest_ip":"{dst}","dest_port":502,"proto":"TCP","modbus":{{"id":1,"request":{{"transaction_id":1,"protocol_id":0,"unit_id":1,"function_raw":{code},"access_type":"{access}","category":"PUBLIC_ASSIGNED","error_flags":"NONE"}}}}}}"#
    )
}

/// `Mmm dd hh:mm:ss` in UTC.
fn rfc3164(now: i64) -> String {
    let iso = format_rfc3339(now);
    let month: usize = iso[5..7].parse().unwrap_or(1);
    let day: u32 = iso[8..10].parse().unwrap_or(1);
    format!("{} {day:>2} {}", ingest::time::MONTHS[month - 1], &iso[11..19])
}

/// A minimal HTTP/1.1 client (one request per connection) for the plant and tests.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let body = body.unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp);
    let status =
        text.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// Where the demo keeps what a person may want to look at.
pub fn describe(data_dir: &Path) -> String {
    format!(
        "data directory {}\n  ledger       {}\n  admin token  {}\n  plant logs   {}",
        data_dir.display(),
        data_dir.join("ledger").display(),
        data_dir.join("demo-token").display(),
        data_dir.join("plant").display()
    )
}
