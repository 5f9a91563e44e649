//! Syslog over UDP (one message per datagram; drops counted, as UDP has no
//! backpressure) and TCP (RFC 6587 octet-counting and newline framing;
//! backpressure by not reading while the raw topic is full).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use super::{MAX_BATCH, SourceError, now_millis};
use crate::bus::Publisher;
use crate::parse::Format;
use crate::record::RawRecord;

fn default_udp_name() -> String {
    "syslog-udp".into()
}
fn default_tcp_name() -> String {
    "syslog-tcp".into()
}
fn default_max_frame() -> usize {
    64 * 1024
}

/// `[[sources.syslog_udp]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogUdpConfig {
    /// Address to bind, e.g. `0.0.0.0:514`.
    pub listen: SocketAddr,
    /// Source name in events and metrics. Default `syslog-udp`.
    #[serde(default = "default_udp_name")]
    pub name: String,
}

/// TLS for a syslog TCP listener (RFC 5425, usually port 6514).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
    /// PEM CA certificates; when set, senders must present a certificate it signed (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<std::path::PathBuf>,
}

/// `[[sources.syslog_tcp]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTcpConfig {
    /// Address to bind, e.g. `0.0.0.0:601`.
    pub listen: SocketAddr,
    /// Source name in events and metrics. Default `syslog-tcp`.
    #[serde(default = "default_tcp_name")]
    pub name: String,
    /// Longest accepted frame in bytes; longer ones are dead-lettered. Default 65536.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// Serve TLS (RFC 5425) instead of plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Builds the TLS acceptor; errors name the file.
pub fn tls_acceptor(cfg: &TlsConfig, source_name: &str) -> Result<tokio_rustls::TlsAcceptor, SourceError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &std::path::Path, e: String| {
        SourceError::io(
            source_name,
            format!("tls {}", path.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| bad(&cfg.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&cfg.cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| bad(&cfg.key, e.to_string()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&cfg.cert, e.to_string()))?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| bad(ca, e.to_string()))? {
                roots.add(c.map_err(|e| bad(ca, e.to_string()))?).map_err(|e| bad(ca, e.to_string()))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(std::sync::Arc::new(roots), provider)
                    .build()
                    .map_err(|e| bad(ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| bad(&cfg.key, e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// Counts datagrams dropped because the raw topic was full.
#[derive(Debug, Default)]
pub struct UdpDrops(pub AtomicU64);

/// Binds the UDP socket (so start-up fails fast on a bad address) and returns the task.
pub async fn udp(
    cfg: SyslogUdpConfig,
    out: Publisher<RawRecord>,
    drops: Arc<UdpDrops>,
) -> Result<(SocketAddr, impl std::future::Future<Output = Result<(), SourceError>>), SourceError> {
    let sock = UdpSocket::bind(cfg.listen)
        .await
        .map_err(|e| SourceError::io(&cfg.name, format!("bind udp {}", cfg.listen), e))?;
    let local = sock.local_addr().map_err(|e| SourceError::io(&cfg.name, "local address", e))?;
    let name: Arc<str> = cfg.name.into();
    Ok((local, async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = sock.recv_from(&mut buf).await.map_err(|e| SourceError::io(&name, "recv", e))?;
            let now = now_millis();
            let mut batch = vec![RawRecord::new(name.clone(), Format::Syslog, now, buf[..n].to_vec())];
            while batch.len() < MAX_BATCH {
                match sock.try_recv_from(&mut buf) {
                    Ok((n, _)) => batch.push(RawRecord::new(name.clone(), Format::Syslog, now, buf[..n].to_vec())),
                    Err(_) => break,
                }
            }
            if let Err(back) = out.try_publish(batch) {
                drops.0.fetch_add(back.len() as u64, Ordering::Relaxed);
                tracing::warn!(source = %name, dropped = back.len(), "raw topic full: dropped syslog datagrams");
            }
        }
    }))
}

/// Binds the TCP listener and returns the accept loop.
pub async fn tcp(
    cfg: SyslogTcpConfig,
    out: Publisher<RawRecord>,
) -> Result<(SocketAddr, impl std::future::Future<Output = Result<(), SourceError>>), SourceError> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| SourceError::io(&cfg.name, format!("bind tcp {}", cfg.listen), e))?;
    let local = listener.local_addr().map_err(|e| SourceError::io(&cfg.name, "local address", e))?;
    let tls = cfg.tls.as_ref().map(|t| tls_acceptor(t, &cfg.name)).transpose()?;
    let name: Arc<str> = cfg.name.into();
    let max_frame = cfg.max_frame;
    Ok((local, async move {
        // Connections live in this set: when the accept loop is stopped (its task
        // aborted at shutdown), the set is dropped and every connection with it,
        // so no connection keeps the raw topic open.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let (stream, peer) = tokio::select! {
                a = listener.accept() => a.map_err(|e| SourceError::io(&name, "accept", e))?,
                Some(_) = conns.join_next() => continue,
            };
            let (name, out, tls) = (name.clone(), out.clone(), tls.clone());
            conns.spawn(async move {
                let result = match tls {
                    None => connection(stream, &name, max_frame, out).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => connection(s, &name, max_frame, out).await,
                        Err(e) => Err(SourceError::io(&name, "tls handshake", e)),
                    },
                };
                if let Err(e) = result {
                    tracing::warn!(source = %name, %peer, error = %e, "syslog connection ended with an error");
                }
            });
        }
    }))
}

enum Frame {
    Message(Vec<u8>),
    TooLong(Vec<u8>),
}

/// Reads one frame: `LEN SP MSG` when the first byte is a digit (octet
/// counting), else a line up to LF (non-transparent framing).
async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Option<Frame>> {
    let first = match r.fill_buf().await?.first() {
        None => return Ok(None),
        Some(b) => *b,
    };
    if first.is_ascii_digit() {
        let mut len_text = Vec::with_capacity(8);
        r.read_until(b' ', &mut len_text).await?;
        let len = std::str::from_utf8(&len_text)
            .ok()
            .and_then(|t| t.trim_end().parse::<usize>().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad octet count"))?;
        let keep = len.min(max);
        let mut msg = vec![0u8; keep];
        r.read_exact(&mut msg).await?;
        if len > max {
            tokio::io::copy(&mut r.take((len - max) as u64), &mut tokio::io::sink()).await?;
            return Ok(Some(Frame::TooLong(msg)));
        }
        Ok(Some(Frame::Message(msg)))
    } else {
        let mut line = Vec::with_capacity(256);
        let n = tokio::io::AsyncReadExt::take(&mut *r, max as u64 + 1).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') && line.len() > max {
            // Discard the rest of the over-long line.
            let mut rest = Vec::new();
            r.read_until(b'\n', &mut rest).await?;
            line.truncate(max);
            return Ok(Some(Frame::TooLong(line)));
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        Ok(Some(Frame::Message(line)))
    }
}

async fn connection<S: tokio::io::AsyncRead + Unpin>(
    stream: S,
    name: &Arc<str>,
    max: usize,
    out: Publisher<RawRecord>,
) -> Result<(), SourceError> {
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let frame = read_frame(&mut r, max).await.map_err(|e| SourceError::io(name, "read", e))?;
        let now = now_millis();
        match frame {
            None => break,
            Some(Frame::Message(m)) if m.is_empty() || m == b"\r" => {}
            Some(Frame::Message(m)) => batch.push(RawRecord::new(name.clone(), Format::Syslog, now, m)),
            Some(Frame::TooLong(m)) => {
                let mut rec = RawRecord::new(name.clone(), Format::Syslog, now, m);
                rec.transport_error = Some(format!("{name}: frame longer than {max} bytes (kept the first {max})"));
                batch.push(rec);
            }
        }
        // Publish when the batch is full or no further frame is already buffered.
        if batch.len() >= MAX_BATCH || r.buffer().is_empty() {
            out.publish(std::mem::take(&mut batch))
                .await
                .map_err(|_| SourceError::BusClosed { source_name: name.to_string() })?;
        }
    }
    out.publish(batch).await.map_err(|_| SourceError::BusClosed { source_name: name.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<(bool, Vec<u8>)> {
        let mut r = BufReader::new(input);
        let mut out = Vec::new();
        while let Some(f) = read_frame(&mut r, max).await.expect("frame") {
            out.push(match f {
                Frame::Message(m) => (true, m),
                Frame::TooLong(m) => (false, m),
            });
        }
        out
    }

    #[tokio::test]
    async fn octet_counting_and_newline_framing_mix() {
        let got = frames(b"11 <13>1 hello\n<13>1 second\n5 <1>ab", 100).await;
        let expect: Vec<(bool, Vec<u8>)> =
            [&b"<13>1 hello"[..], b"", b"<13>1 second", b"<1>ab"].iter().map(|m| (true, m.to_vec())).collect();
        assert_eq!(got, expect);
    }

    #[tokio::test]
    async fn over_long_frames_are_flagged() {
        let got = frames(b"<13>1 0123456789\nok\n12 <13>1 abcdef", 8).await;
        assert_eq!(got[0], (false, b"<13>1 01".to_vec()));
        assert_eq!(got[1], (true, b"ok".to_vec()));
        assert_eq!(got[2], (false, b"<13>1 ab".to_vec()));
    }
}
