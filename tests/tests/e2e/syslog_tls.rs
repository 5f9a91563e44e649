//! Syslog over TLS (RFC 5425): a certificate made for the test, Custos serving
//! it, and two real TLS clients — the `openssl s_client` command and a rustls
//! client — sending octet-counted RFC 5424 messages that come out normalised.
//! A plain-text sender on the TLS port gets nothing in.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos::{Config, Custos};
use ingest::source::syslog::{SyslogTcpConfig, TlsConfig};
use tokio::io::AsyncWriteExt;

fn frame(msg: &str) -> String {
    format!("{} {msg}", msg.len())
}

async fn wait_for(c: &Custos, msg: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if !c.views.events(1000, |e| e.message == msg).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_syslog_from_openssl_and_rustls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write");

    let mut cfg = Config::with_data_dir(dir.path().join("data"));
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    let tls = TlsConfig { cert: cert_path.clone(), key: key_path.clone(), client_ca: None };
    cfg.sources.syslog_tcp.push(SyslogTcpConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        name: "tls".into(),
        max_frame: 65_536,
        tls: Some(tls),
    });
    let c = Custos::start(cfg).await.expect("start");
    let addr = c.syslog_tcp[0];

    // 1. openssl s_client, verifying our certificate.
    let msg1 = "tls via openssl";
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr.to_string(), "-CAfile"])
        .arg(&cert_path)
        .args(["-verify_return_error", "-servername", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(frame(&format!("<13>1 2026-11-26T10:00:00Z h app - - - {msg1}")).as_bytes())
        .expect("send");
    assert!(wait_for(&c, msg1).await, "the openssl client's message arrived");
    let _ = child.kill();
    let _ = child.wait();

    // 2. A rustls client.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut s = connector
        .connect(rustls_pki_types::ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let msg2 = "tls via rustls";
    s.write_all(frame(&format!("<13>1 2026-11-26T10:00:01Z h app - - - {msg2}")).as_bytes()).await.expect("send");
    s.flush().await.expect("flush");
    assert!(wait_for(&c, msg2).await, "the rustls client's message arrived");

    // 3. Plain text on the TLS port is not accepted as syslog.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let msg3 = "plain text on a tls port";
    let _ = plain.write_all(frame(&format!("<13>1 2026-11-26T10:00:02Z h app - - - {msg3}")).as_bytes()).await;
    drop(plain);
    c.shutdown().await.expect("shutdown");
    let none = ledger::verify_dir(&dir.path().join("data/ledger"), None).expect("verifies");
    assert!(
        none.kinds.get("event").copied().unwrap_or(0) == 2,
        "only the two TLS messages are events: {:?}",
        none.kinds
    );
}

#[tokio::test]
async fn a_bad_certificate_path_fails_at_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::with_data_dir(dir.path().to_path_buf());
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    let tls = TlsConfig { cert: dir.path().join("missing.pem"), key: dir.path().join("key.pem"), client_ca: None };
    cfg.sources.syslog_tcp.push(SyslogTcpConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        name: "tls".into(),
        max_frame: 1024,
        tls: Some(tls),
    });
    let err = Custos::start(cfg).await.err().expect("must fail").to_string();
    assert!(err.contains("missing.pem"), "{err}");
}
