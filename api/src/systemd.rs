//! systemd's service notifications (sd_notify(3)), for a unit of
//! `Type=notify`: `READY=1` once Custos serves, `STOPPING=1` when it drains,
//! a `STATUS=` line for `systemctl status`, and `WATCHDOG=1` pings when the
//! unit sets `WatchdogSec=`. Without `NOTIFY_SOCKET` (not run by systemd)
//! nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where systemd listens, from `NOTIFY_SOCKET`: a path, or `@name` in the
/// abstract namespace.
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

/// What one notification says, in the protocol's `KEY=value` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    Ready { status: &'a str },
    Stopping { status: &'a str },
    Watchdog,
}

impl Notice<'_> {
    /// The datagram: newline-separated assignments. A status is one line
    /// (a newline in it would start another assignment).
    pub fn message(&self) -> String {
        let one_line = |s: &str| s.replace(['\n', '\r'], " ");
        match self {
            Notice::Ready { status } => {
                format!("READY=1\nSTATUS={}\nMAINPID={}\n", one_line(status), std::process::id())
            }
            Notice::Stopping { status } => format!("STOPPING=1\nSTATUS={}\n", one_line(status)),
            Notice::Watchdog => "WATCHDOG=1\n".to_owned(),
        }
    }
}

/// Reads `NOTIFY_SOCKET`'s value: `/path` or `@abstract-name`.
fn address(value: &str) -> Result<SocketAddr, String> {
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt as _;
        return SocketAddr::from_abstract_name(name.as_bytes()).map_err(|e| format!("NOTIFY_SOCKET {value:?}: {e}"));
    }
    if !value.starts_with('/') {
        return Err(format!("NOTIFY_SOCKET {value:?}: neither an absolute path nor @name"));
    }
    SocketAddr::from_pathname(value).map_err(|e| format!("NOTIFY_SOCKET {value:?}: {e}"))
}

impl Notifier {
    /// The notifier systemd asked for, if any. A bad `NOTIFY_SOCKET` is
    /// logged and ignored: notifications never stop Custos.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var("NOTIFY_SOCKET").ok().filter(|v| !v.is_empty())?;
        let made = address(&value).and_then(|to| {
            let socket = UnixDatagram::unbound().map_err(|e| format!("notify socket: {e}"))?;
            Ok(Self { socket, to })
        });
        match made {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "systemd notifications off");
                None
            }
        }
    }

    /// Sends `notice`; a failure is logged (systemd may be restarting).
    pub fn notify(&self, notice: Notice<'_>) {
        if let Err(e) = self.socket.send_to_addr(notice.message().as_bytes(), &self.to) {
            tracing::warn!(error = %e, ?notice, "systemd notification not sent");
        }
    }

    /// Pings the watchdog at half the unit's `WatchdogSec=` from the async
    /// runtime, so a runtime that stops turning stops the pings. Nothing
    /// without a watchdog for this process.
    pub fn spawn_watchdog(self: std::sync::Arc<Self>) {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let Some(every) = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id()) else { return };
        tracing::info!(every_ms = every.as_millis() as u64, "pinging the systemd watchdog");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                self.notify(Notice::Watchdog);
            }
        });
    }
}

/// How often to ping: half of `WATCHDOG_USEC`, when set for this process
/// (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.parse::<u32>().ok() != Some(own_pid)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let ready = Notice::Ready { status: "ledger 12 records\nAPI on 127.0.0.1:8088" }.message();
        assert_eq!(
            ready,
            format!("READY=1\nSTATUS=ledger 12 records API on 127.0.0.1:8088\nMAINPID={}\n", std::process::id())
        );
        assert_eq!(Notice::Stopping { status: "draining" }.message(), "STOPPING=1\nSTATUS=draining\n");
        assert_eq!(Notice::Watchdog.message(), "WATCHDOG=1\n");
    }

    #[test]
    fn watchdog_intervals() {
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None, "another process's watchdog");
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("1"), None, 7), Some(Duration::from_millis(1)));
    }

    #[test]
    fn addresses() {
        assert!(address("/run/systemd/notify").is_ok());
        assert!(address("@/org/freedesktop/systemd1/notify/123").is_ok());
        assert!(address("relative/path").unwrap_err().contains("neither an absolute path nor @name"));
    }

    #[test]
    fn notices_reach_the_socket_systemd_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier {
            socket: UnixDatagram::unbound().expect("socket"),
            to: address(path.to_str().expect("utf-8")).expect("addr"),
        };
        n.notify(Notice::Stopping { status: "draining" });
        let mut buf = [0u8; 256];
        let len = systemd.recv(&mut buf).expect("received");
        assert_eq!(&buf[..len], b"STOPPING=1\nSTATUS=draining\n");
    }
}
