//! `audit` records (EU GMP Annex 11 §9, 21 CFR Part 11 §11.10(e)): who — with
//! the printed name when the actor has an account —, what, when — server
//! time, with the clock it came from and whether that clock is known to be
//! synchronised —, why, and the details (old → new where something changed).

use std::path::Path;

use serde_json::{Value, json};

use crate::auth::Role;

/// One audited action.
pub struct Entry<'a> {
    pub actor: &'a str,
    pub printed_name: Option<&'a str>,
    pub role: Option<Role>,
    pub action: &'a str,
    pub reason: &'a str,
    pub details: Value,
}

/// The clock the time came from. `synchronized` is true when systemd-timesyncd
/// reports synchronisation, and null when this cannot be known here.
pub fn clock() -> Value {
    let synced = Path::new("/run/systemd/timesync/synchronized").exists().then_some(true);
    json!({"source": "system clock, UTC", "synchronized": synced})
}

/// The canonical bytes of the `audit` record for `e`, made now.
pub fn encode(e: &Entry<'_>) -> Result<Vec<u8>, ledger::LedgerError> {
    let now = ingest::source::now_millis();
    let data = json!({
        "actor": e.actor,
        "printed_name": e.printed_name,
        "role": e.role,
        "action": e.action,
        "reason": e.reason,
        "time": ingest::time::format_rfc3339(now),
        "clock": clock(),
        "details": e.details,
    });
    ledger::record::encode(ledger::RecordKind::Audit, now, &data)
}

/// An action Custos took itself.
pub fn system(action: &str, details: Value) -> Result<Vec<u8>, ledger::LedgerError> {
    system_because(action, "", details)
}

/// An action Custos took itself, and why.
pub fn system_because(action: &str, reason: &str, details: Value) -> Result<Vec<u8>, ledger::LedgerError> {
    encode(&Entry { actor: "system", printed_name: None, role: None, action, reason, details })
}

/// Who runs a command (`custos user`, `custos evidence export`): the
/// operating-system account of the process's user id (not `$USER`, which anyone can set), and who ran `sudo`.
pub fn command_line_user() -> String {
    let uid = rustix::process::getuid().as_raw();
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| account_of(&p, uid))
        .unwrap_or_else(|| format!("uid {uid}"));
    match std::env::var("SUDO_USER") {
        Ok(by) if by != name => format!("{name} (sudo by {by})"),
        _ => name,
    }
}

/// The name of user id `uid` in the text of `/etc/passwd`.
fn account_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_named_from_the_password_file() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nops-jo:x:1001:1001::/home/ops-jo:/bin/sh\nbad line\n";
        assert_eq!(account_of(passwd, 1001).as_deref(), Some("ops-jo"));
        assert_eq!(account_of(passwd, 0).as_deref(), Some("root"));
        assert_eq!(account_of(passwd, 7), None);
    }
}
