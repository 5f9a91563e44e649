//! Real syslog senders: util-linux `logger` sends RFC 5424 and RFC 3164
//! messages over UDP and TCP (newline and octet-counting framing) to a running
//! Custos, and the messages come out normalised.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use custos::{Config, Custos};
use ingest::source::syslog::{SyslogTcpConfig, SyslogUdpConfig};

fn logger(addr: SocketAddr, args: &[&str], msg: &str) {
    let status = Command::new("logger")
        .args(["--server", &addr.ip().to_string(), "--port", &addr.port().to_string(), "--tag", "custos-test"])
        .args(args)
        .arg(msg)
        .status()
        .expect("logger (util-linux) must be installed: .ci/run installs it");
    assert!(status.success(), "logger {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_over_udp_and_tcp_in_both_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::with_data_dir(dir.path().to_path_buf());
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    let any = "127.0.0.1:0".parse().expect("addr");
    cfg.sources.syslog_udp.push(SyslogUdpConfig { listen: any, name: "udp".into() });
    cfg.sources.syslog_tcp.push(SyslogTcpConfig { listen: any, name: "tcp".into(), max_frame: 65_536, tls: None });
    let c = Custos::start(cfg).await.expect("start");
    let (udp, tcp) = (c.syslog_udp[0], c.syslog_tcp[0]);
    let cases: [(SocketAddr, &[&str], &str, &str); 5] = [
        (udp, &["--udp", "--rfc5424"], "udp", "udp-5424 hello"),
        (udp, &["--udp", "--rfc3164"], "udp", "udp-3164 hello"),
        (tcp, &["--tcp", "--rfc5424"], "tcp", "tcp-5424 hello"),
        (tcp, &["--tcp", "--rfc3164"], "tcp", "tcp-3164 hello"),
        (tcp, &["--tcp", "--rfc5424", "--octet-count"], "tcp", "tcp-5424-octet hello"),
    ];
    for (addr, args, _, msg) in cases {
        logger(addr, args, msg);
    }
    let until = Instant::now() + Duration::from_secs(30);
    for (_, args, source, msg) in cases {
        loop {
            let found = c.views.events(1000, |e| e.message == msg);
            if let Some(e) = found.first() {
                let e = &e.item;
                assert_eq!(e.metadata.source, source, "{args:?}");
                assert_eq!(e.metadata.parser, "syslog/text");
                assert_eq!(e.unmapped.get_str("syslog.app_name"), Some("custos-test"), "{args:?}");
                assert!(
                    (e.time - e.observed_time).abs() < 5 * 60_000,
                    "{args:?}: header time {} vs received {}",
                    e.time,
                    e.observed_time
                );
                break;
            }
            assert!(Instant::now() < until, "{msg:?} ({args:?}) never arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    c.shutdown().await.expect("shutdown");
    ledger::verify_dir(&dir.path().join("ledger"), None).expect("ledger verifies");
}
