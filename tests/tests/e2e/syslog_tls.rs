//! Syslog over TLS (RFC 5425): a certificate made for the test, Custos serving
//! it, and two real TLS clients — the `openssl s_client` command and a rustls
//! client — sending octet-counted RFC 5424 messages that come out normalised.
//! A plain-text sender on the TLS port gets nothing in. With `client_ca`, only
//! senders presenting a certificate the plant CA signed get in.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos::{Config, Custos};
use ingest::source::syslog::{SyslogTcpConfig, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// `openssl s_client` trusting `server_cert`, with `extra` options (a
/// certificate of its own), sending `line`; kill it once it has arrived.
fn openssl_sends(
    addr: std::net::SocketAddr,
    server_cert: &std::path::Path,
    extra: &[(&str, &std::path::Path)],
    line: &str,
) -> std::process::Child {
    let mut c = Command::new("openssl");
    c.args(["s_client", "-quiet", "-connect", &addr.to_string(), "-CAfile"]).arg(server_cert);
    for (option, path) in extra {
        c.arg(option).arg(path);
    }
    let mut child = c
        .args(["-verify_return_error", "-servername", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    child.stdin.take().expect("stdin").write_all(line.as_bytes()).expect("send");
    child
}

/// Custos with one syslog source over TLS, on ports of the system's choosing.
async fn start_with_tls(data_dir: &std::path::Path, tls: TlsConfig) -> Result<Custos, custos::Error> {
    let mut cfg = Config::with_data_dir(data_dir.to_path_buf());
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.sources.syslog_tcp.push(SyslogTcpConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        name: "tls".into(),
        max_frame: 65_536,
        tls: Some(tls),
    });
    Custos::start(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_syslog_from_openssl_and_rustls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write");

    let tls = TlsConfig { cert: cert_path.clone(), key: key_path.clone(), client_ca: None };
    let c = start_with_tls(&dir.path().join("data"), tls).await.expect("start");
    let addr = c.syslog_tcp[0];

    // 1. openssl s_client, verifying our certificate.
    let msg1 = "tls via openssl";
    let line = frame(&format!("<13>1 2026-11-26T10:00:00Z h app - - - {msg1}"));
    let mut child = openssl_sends(addr, &cert_path, &[], &line);
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
    let tls = TlsConfig { cert: dir.path().join("missing.pem"), key: dir.path().join("key.pem"), client_ca: None };
    let err = start_with_tls(dir.path(), tls).await.err().expect("must fail").to_string();
    assert!(err.contains("missing.pem"), "{err}");
}

/// A plant CA, and a certificate it signed for one sender.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    /// The sender's certificate and key, as a rustls client presents them.
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

fn pki(ca_name: &str, sender: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec![sender.to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, sender);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &Issuer::new(ca, ca_key)).expect("signed");
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        chain: vec![cert.der().clone()],
        key_der: key.serialize_der(),
    }
}

/// Mutual TLS (`client_ca`): a sender whose certificate the plant's CA
/// signed gets in; one without a certificate, or with one from another CA,
/// is refused in the handshake, and nothing it sent is an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_takes_only_senders_the_plant_ca_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (plant, stranger) = (pki("Plant syslog CA", "fw-01.plant"), pki("Another CA", "fw-99.elsewhere"));
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let (cert_path, key_path) =
        (path("cert.pem", &server.cert.pem()), path("key.pem", &server.signing_key.serialize_pem()));
    let ca_path = path("plant-ca.pem", &plant.ca_pem);
    let (sender_cert, sender_key) = (path("fw-01.pem", &plant.cert_pem), path("fw-01-key.pem", &plant.key_pem));

    let tls = TlsConfig { cert: cert_path.clone(), key: key_path, client_ca: Some(ca_path) };
    let c = start_with_tls(&dir.path().join("data"), tls).await.expect("start");
    let addr = c.syslog_tcp[0];

    // Refused: no certificate, and one from another CA. Under TLS 1.3 the
    // client's side of the handshake ends before the server has checked its
    // certificate, so the refusal is the server's alert on the next read.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.der().clone()).expect("root");
    let builder = || {
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots.clone())
    };
    let foreign_key = rustls_pki_types::PrivateKeyDer::try_from(stranger.key_der.clone()).expect("key");
    let clients = [
        ("no certificate", builder().with_no_client_auth()),
        ("another CA's", builder().with_client_auth_cert(stranger.chain.clone(), foreign_key).expect("client cert")),
    ];
    for (what, client) in clients {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let refused = match connector.connect(name, tcp).await {
            Err(_) => true,
            Ok(mut s) => {
                let msg = format!("<13>1 2026-11-26T10:00:00Z h app - - - from a sender with {what}");
                let _ = s.write_all(frame(&msg).as_bytes()).await;
                let _ = s.flush().await;
                let mut buf = [0u8; 64];
                let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("an answer");
                matches!(read, Err(_) | Ok(0))
            }
        };
        assert!(refused, "a sender with {what} certificate is refused");
    }

    // Taken: openssl s_client presenting fw-01's certificate, as rsyslog's
    // gtls or ossl driver would.
    let msg = "mutual tls via openssl";
    let line = frame(&format!("<13>1 2026-11-26T10:00:01Z fw-01 app - - - {msg}"));
    let own = [("-cert", sender_cert.as_path()), ("-key", sender_key.as_path())];
    let mut child = openssl_sends(addr, &cert_path, &own, &line);
    assert!(wait_for(&c, msg).await, "the signed sender's message arrived");
    let _ = child.kill();
    let _ = child.wait();
    c.shutdown().await.expect("shutdown");
    let kinds = ledger::verify_dir(&dir.path().join("data/ledger"), None).expect("verifies").kinds;
    assert_eq!(kinds.get("event").copied(), Some(1), "only the signed sender's message is an event: {kinds:?}");
}
