//! Bearer API tokens, stored as SHA-256 hashes, each with one role.
//! The permission table lives in `server.rs` next to the routes.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::listfile::{ListFile, Listed};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    SocAnalyst,
    QualityReviewer,
    Auditor,
    ControlRoom,
    Collector,
    /// Reads the metrics, nothing else: the token a Prometheus scraper holds.
    Monitoring,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::SocAnalyst,
        Role::QualityReviewer,
        Role::Auditor,
        Role::ControlRoom,
        Role::Collector,
        Role::Monitoring,
    ];

    /// The name the API, the files and the command line use (`soc_analyst`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::SocAnalyst => "soc_analyst",
            Role::QualityReviewer => "quality_reviewer",
            Role::Auditor => "auditor",
            Role::ControlRoom => "control_room",
            Role::Collector => "collector",
            Role::Monitoring => "monitoring",
        }
    }

    /// The role of that name, as [`Role::name`] gives it.
    pub fn named(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// A session whose holder must change their password first (it is
    /// temporary or expired): it may change it or log out, nothing else.
    pub password_change_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredToken {
    name: String,
    role: Role,
    sha256: String,
    /// Sessions from a login expire (Unix ms); API tokens do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// An API token issued for a time (`--token-days`) works until then (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_until: Option<i64>,
    /// See [`Principal::password_change_only`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    password_change_only: bool,
    /// Ended before its time: kept (by hash, as ever) for [`KEEP_ENDED_MS`],
    /// so that a later use of it is told apart from a token never issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ended: Option<EndedAt>,
}

/// Why and when (Unix ms) a token ended before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndedAt {
    why: Ended,
    at: i64,
}

/// Why a token ended before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// The session logged out.
    Logout,
    /// The session went unused past the idle limit.
    Idle,
    /// Its holder changed their password in another session.
    PasswordChanged,
    /// An eleventh login ended the oldest session.
    SessionLimit,
    /// A newer API token replaced it (`custos user token`).
    Replaced,
    /// Its account was disabled (`custos user disable`).
    Disabled,
}

impl Ended {
    pub fn name(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Idle => "idle",
            Self::PasswordChanged => "password_changed",
            Self::SessionLimit => "session_limit",
            Self::Replaced => "replaced",
            Self::Disabled => "disabled",
        }
    }
}

/// How long an ended token or an expired session is remembered: its use
/// within this time is reported with its account and why it stopped.
pub const KEEP_ENDED_MS: i64 = 30 * 86_400_000;
/// Ended tokens and expired sessions remembered at most (the newest), so
/// that the file stays small however many logins and logouts a month brings.
pub const MAX_ENDED: usize = 1_000;

impl StoredToken {
    /// Not ended, and neither an expired session nor an expired API token.
    fn live_at(&self, now: i64) -> bool {
        self.ended.is_none() && self.expires_at.is_none_or(|e| e > now) && self.valid_until.is_none_or(|v| v > now)
    }

    /// Ends it now for `why`; false if it had ended already, or is a session
    /// past its time (which stays expired, and is said to be).
    fn end(&mut self, why: Ended, now: i64) -> bool {
        let was_live = self.ended.is_none() && self.expires_at.is_none_or(|e| e > now);
        if was_live {
            self.ended = Some(EndedAt { why, at: now });
        }
        was_live
    }

    /// When it stopped working, if it has: ended, or a session past its time.
    fn finished_at(&self, now: i64) -> Option<i64> {
        self.ended.map(|e| e.at).or(self.expires_at.filter(|&e| e <= now))
    }
}

/// Forgets ended tokens and expired sessions older than [`KEEP_ENDED_MS`],
/// and all but the newest [`MAX_ENDED`] of them.
fn forget_old_ended(map: &mut HashMap<String, StoredToken>, now: i64) {
    map.retain(|_, t| t.finished_at(now).is_none_or(|at| now.saturating_sub(at) < KEEP_ENDED_MS));
    let mut ended: Vec<(i64, String)> =
        map.values().filter_map(|t| Some((t.finished_at(now)?, t.sha256.clone()))).collect();
    if ended.len() > MAX_ENDED {
        ended.sort_unstable();
        for (_, key) in &ended[..ended.len() - MAX_ENDED] {
            map.remove(key);
        }
    }
}

fn new_token() -> std::io::Result<String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(format!("no randomness for a token: {e}")))?;
    Ok(format!("cus_{}", hex::encode(secret)))
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A name's live tokens under one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenHolder {
    pub name: String,
    pub role: Role,
    pub api_token: bool,
    /// RFC 3339, when its API token was issued for a time.
    pub api_token_valid_until: Option<String>,
    pub sessions: usize,
}

/// Sessions one name may hold at once: a login past them ends the oldest.
/// Every login rewrites the tokens file, so without a bound one account
/// logging in over and over would make each login slower than the last.
pub const MAX_SESSIONS: usize = 10;

/// Tokens in `<data-dir>/tokens.json`; only hashes are stored.
#[derive(Debug)]
pub struct TokenStore {
    /// By hash. `custos user` may change the file while Custos runs.
    tokens: ListFile<HashMap<String, StoredToken>>,
    /// A session unused this long ends (ms; 0: never).
    idle_ms: i64,
    /// When each session was last used, by token hash: kept in memory only,
    /// so after a restart a session's idle time counts from its next use.
    last_used: std::sync::Mutex<HashMap<String, i64>>,
}

impl Listed for HashMap<String, StoredToken> {
    type Item = StoredToken;
    fn from_items(items: Vec<StoredToken>) -> Self {
        items.into_iter().map(|t| (t.sha256.clone(), t)).collect()
    }
    fn items(&self) -> Vec<&StoredToken> {
        let mut list: Vec<&StoredToken> = self.values().collect();
        list.sort_by(|a, b| (&a.name, &a.sha256).cmp(&(&b.name, &b.sha256)));
        list
    }
}

impl TokenStore {
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        Ok(Self { tokens: ListFile::open(path)?, idle_ms: 0, last_used: Default::default() })
    }

    /// Ends sessions unused for `idle_ms` (0: never), as the next request
    /// with one finds.
    pub fn with_session_idle(self, idle_ms: i64) -> Self {
        Self { idle_ms, ..self }
    }

    /// Issues a new token for `name` (replacing that name's earlier token).
    pub fn issue(&self, name: &str, role: Role) -> std::io::Result<String> {
        self.issue_valid_until(name, role, None)
    }

    /// Issues a new token for `name` that works until `valid_until` (Unix
    /// ms; `None`: until replaced), replacing that name's earlier token.
    pub fn issue_valid_until(&self, name: &str, role: Role, valid_until: Option<i64>) -> std::io::Result<String> {
        let token = new_token()?;
        self.put_api_token(name, role, &token, valid_until)?;
        Ok(token)
    }

    /// A session token for `name` that stops working at `expires_at` (Unix
    /// ms); other tokens of the name stay, but for the oldest session when
    /// the name already holds [`MAX_SESSIONS`]. Expired sessions are dropped.
    pub fn issue_session(&self, name: &str, role: Role, now: i64, expires_at: i64) -> std::io::Result<String> {
        self.issue_scoped_session(name, role, now, expires_at, false)
    }

    /// A session as [`issue_session`](Self::issue_session) gives, that may
    /// only change its holder's password or log out until
    /// [`password_changed`](Self::password_changed).
    pub fn issue_password_change_session(
        &self,
        name: &str,
        role: Role,
        now: i64,
        expires_at: i64,
    ) -> std::io::Result<String> {
        self.issue_scoped_session(name, role, now, expires_at, true)
    }

    /// The session `token`'s holder chose a new password: it may now do what
    /// its role allows.
    pub fn password_changed(&self, token: &str) -> std::io::Result<()> {
        let key = hash(token);
        self.tokens.change(|map| {
            if let Some(t) = map.get_mut(&key) {
                t.password_change_only = false;
            }
        })
    }

    fn issue_scoped_session(
        &self,
        name: &str,
        role: Role,
        now: i64,
        expires_at: i64,
        password_change_only: bool,
    ) -> std::io::Result<String> {
        let token = new_token()?;
        self.tokens.change(|map| {
            let mut sessions: Vec<(i64, String)> = map
                .values()
                .filter(|t| t.name == name && t.live_at(now))
                .filter_map(|t| Some((t.expires_at?, t.sha256.clone())))
                .collect();
            if sessions.len() >= MAX_SESSIONS {
                sessions.sort_unstable();
                for (_, oldest) in &sessions[..=sessions.len() - MAX_SESSIONS] {
                    map.get_mut(oldest).map(|t| t.end(Ended::SessionLimit, now));
                }
            }
            forget_old_ended(map, now);
            let key = hash(&token);
            let session = StoredToken {
                name: name.to_owned(),
                role,
                sha256: key.clone(),
                expires_at: Some(expires_at),
                valid_until: None,
                password_change_only,
                ended: None,
            };
            map.insert(key.clone(), session);
            {
                // Sessions ended above are forgotten here too.
                let mut used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
                used.retain(|k, _| map.get(k).is_some_and(|t| t.ended.is_none()));
                used.insert(key, now);
            }
        })?;
        Ok(token)
    }

    /// Registers a token the caller already holds (e.g. the demo's saved admin
    /// token), replacing the name's earlier API token (sessions stay).
    pub fn add(&self, name: &str, role: Role, token: &str) -> std::io::Result<()> {
        self.put_api_token(name, role, token, None)
    }

    fn put_api_token(&self, name: &str, role: Role, token: &str, valid_until: Option<i64>) -> std::io::Result<()> {
        let now = ingest::source::now_millis();
        self.tokens.change(|map| {
            for t in map.values_mut().filter(|t| t.name == name && t.expires_at.is_none()) {
                t.end(Ended::Replaced, now);
            }
            forget_old_ended(map, now);
            let key = hash(token);
            let t = StoredToken {
                name: name.to_owned(),
                role,
                sha256: key.clone(),
                expires_at: None,
                valid_until,
                password_change_only: false,
                ended: None,
            };
            map.insert(key, t);
        })
    }

    /// Who holds live tokens, by name and role: an API token or not, and how
    /// many sessions (for an access review).
    pub fn holders(&self, now: i64) -> Vec<TokenHolder> {
        let map = self.tokens.read();
        let mut by: std::collections::BTreeMap<(String, Role), TokenHolder> = Default::default();
        for t in map.values().filter(|t| t.live_at(now)) {
            let h = by.entry((t.name.clone(), t.role)).or_insert_with(|| TokenHolder {
                name: t.name.clone(),
                role: t.role,
                api_token: false,
                api_token_valid_until: None,
                sessions: 0,
            });
            match t.expires_at {
                None => {
                    h.api_token = true;
                    h.api_token_valid_until = t.valid_until.map(ingest::time::format_rfc3339);
                }
                Some(_) => h.sessions += 1,
            }
        }
        by.into_values().collect()
    }

    /// Each live API token issued for a time: its holder, role and when it
    /// stops (Unix ms), by name.
    pub fn api_token_expiries(&self, now: i64) -> Vec<(String, Role, i64)> {
        let map = self.tokens.read();
        let mut out: Vec<(String, Role, i64)> = map
            .values()
            .filter(|t| t.expires_at.is_none() && t.live_at(now))
            .filter_map(|t| Some((t.name.clone(), t.role, t.valid_until?)))
            .collect();
        out.sort();
        out
    }

    /// Ends the session `token` for `why`; false (and nothing done) when it
    /// is an API token, no token at all, or ended already.
    pub fn end_session(&self, token: &str, why: Ended) -> std::io::Result<bool> {
        self.end_session_at(token, why, ingest::source::now_millis())
    }

    /// [`end_session`](Self::end_session) as of `now` (Unix ms).
    pub(crate) fn end_session_at(&self, token: &str, why: Ended, now: i64) -> std::io::Result<bool> {
        let key = hash(token);
        let ended = self.tokens.change(|map| match map.get_mut(&key) {
            Some(t) if t.expires_at.is_some() => t.end(why, now),
            _ => false,
        })?;
        if ended {
            self.last_used.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        }
        Ok(ended)
    }

    /// Ends `name`'s sessions but `keep` (the one asking, if it is one); the
    /// API token stays. Returns how many ended.
    pub fn end_other_sessions(&self, name: &str, keep: &str) -> std::io::Result<usize> {
        let keep = hash(keep);
        let now = ingest::source::now_millis();
        self.tokens.change(|map| {
            let others = map.iter_mut().filter(|(k, t)| t.name == name && t.expires_at.is_some() && **k != keep);
            others.map(|(_, t)| t.end(Ended::PasswordChanged, now)).filter(|&ended| ended).count()
        })
    }

    /// Ends every token of `name`, API token and sessions; returns how many.
    pub fn revoke(&self, name: &str) -> std::io::Result<usize> {
        let now = ingest::source::now_millis();
        self.tokens.change(|map| {
            map.values_mut()
                .filter(|t| t.name == name)
                .map(|t| t.end(Ended::Disabled, now))
                .filter(|&ended| ended)
                .count()
        })
    }

    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        self.check_at(token, ingest::source::now_millis()).ok()
    }

    /// Who holds `token` at `now`, or why no one does. A session unused for
    /// longer than the idle limit is ended here, and said to be.
    pub fn check_at(&self, token: &str, now: i64) -> Result<Principal, Refusal> {
        let key = hash(token);
        let map = self.tokens.read();
        let t = map.get(&key).ok_or(Refusal::Unknown)?;
        if let Some(e) = t.ended {
            return Err(Refusal::Ended { name: t.name.clone(), why: e.why });
        }
        if let Some(at) = t.expires_at.filter(|&e| e <= now) {
            return Err(Refusal::SessionExpired { name: t.name.clone(), at });
        }
        if let Some(at) = t.valid_until.filter(|&v| v <= now) {
            return Err(Refusal::Expired { name: t.name.clone(), at });
        }
        let who = Principal { name: t.name.clone(), role: t.role, password_change_only: t.password_change_only };
        if t.expires_at.is_none() || self.idle_ms == 0 {
            return Ok(who);
        }
        drop(map);
        let mut used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        let last = used.entry(key).or_insert(now);
        if now.saturating_sub(*last) <= self.idle_ms {
            *last = now.max(*last);
            return Ok(who);
        }
        drop(used);
        // Ended once: the next request with it finds no token at all.
        match self.end_session_at(token, Ended::Idle, now) {
            Ok(true) => Err(Refusal::Idle { who, idle_ms: self.idle_ms }),
            // Another request ended it first, and says so.
            Ok(false) => Err(Refusal::Unknown),
            Err(e) => {
                tracing::warn!(error = %e, "an idle session could not be ended in the tokens file");
                Err(Refusal::Unknown)
            }
        }
    }
}

/// Why a token lets no one in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token Custos issued, or one it no longer remembers.
    Unknown,
    /// A session that went unused past the idle limit, ended just now.
    Idle { who: Principal, idle_ms: i64 },
    /// `name`'s API token, issued for a time that has passed (Unix ms).
    Expired { name: String, at: i64 },
    /// `name`'s session, past its time (Unix ms; remembered for [`KEEP_ENDED_MS`]).
    SessionExpired { name: String, at: i64 },
    /// `name`'s token, ended before its time (within [`KEEP_ENDED_MS`]).
    Ended { name: String, why: Ended },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_name_is_its_serde_name() {
        for role in Role::ALL {
            assert_eq!(serde_json::to_value(role).ok(), Some(serde_json::Value::from(role.name())), "{role:?}");
            assert_eq!(Role::named(role.name()), Some(role));
        }
        assert_eq!(Role::named("SocAnalyst"), None);
    }

    #[test]
    fn tokens_are_stored_hashed_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.json");
        let store = TokenStore::open(path.clone()).expect("open");
        let t = store.issue("ana", Role::SocAnalyst).expect("issue");
        let stored = std::fs::read_to_string(&path).expect("read");
        assert!(!stored.contains(&t), "the token itself is never written");
        let again = TokenStore::open(path).expect("reopen");
        assert_eq!(
            again.authenticate(&t),
            Some(Principal { name: "ana".into(), role: Role::SocAnalyst, password_change_only: false })
        );
        assert_eq!(again.authenticate("cus_wrong"), None);
        let t2 = again.issue("ana", Role::SocAnalyst).expect("reissue");
        assert_eq!(again.authenticate(&t), None, "reissuing replaces the old token");
        assert!(again.authenticate(&t2).is_some());
    }

    #[test]
    fn sessions_expire_and_leave_api_tokens_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::open(dir.path().join("tokens.json")).expect("open");
        let api = store.issue("qa1", Role::QualityReviewer).expect("api token");
        let now = ingest::source::now_millis();
        let live = store.issue_session("qa1", Role::QualityReviewer, now, now + 60_000).expect("session");
        let dead = store.issue_session("qa1", Role::QualityReviewer, now, now - 1).expect("expired session");
        assert!(store.authenticate(&live).is_some());
        assert_eq!(store.authenticate(&dead), None, "an expired session is refused");
        let expired = || Err(Refusal::SessionExpired { name: "qa1".into(), at: now - 1 });
        assert_eq!(store.check_at(&dead, now), expired(), "and said to be expired");
        assert!(store.authenticate(&api).is_some(), "a login does not end the API token");
        let api2 = store.issue("qa1", Role::QualityReviewer).expect("reissue");
        assert!(store.authenticate(&live).is_some() && store.authenticate(&api2).is_some());
        // Past the bound, each login ends the name's oldest session, no other.
        let other = store.issue_session("qa2", Role::QualityReviewer, now, now + 60_000).expect("session");
        let later: Vec<String> = (1..=MAX_SESSIONS as i64)
            .map(|i| store.issue_session("qa1", Role::QualityReviewer, now, now + 60_000 + i).expect("session"))
            .collect();
        assert_eq!(store.authenticate(&live), None, "the oldest session ended");
        assert!(later.iter().all(|t| store.authenticate(t).is_some()));
        assert!(store.authenticate(&other).is_some() && store.authenticate(&api2).is_some());
        assert_eq!(store.check_at(&dead, now), expired(), "still expired after later logins");
        // Revoking a name ends its API token and every session, no one else's.
        assert_eq!(store.revoke("qa1").expect("revoke"), 1 + MAX_SESSIONS);
        assert!(later.iter().chain([&api2]).all(|t| store.authenticate(t).is_none()));
        assert!(store.authenticate(&other).is_some());
        assert_eq!(store.check_at(&dead, now), expired(), "an expired session is not revoked, and stays expired");
    }

    /// A token ended before its time is refused naming its account and how
    /// it ended, in another process too, and is no one's in the review;
    /// ended tokens are forgotten after 30 days, the oldest first past 1,000.
    #[test]
    fn ended_tokens_are_named_for_a_while() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::open(dir.path().join("tokens.json")).expect("open");
        let now = ingest::source::now_millis();
        let session = || store.issue_session("qa1", Role::QualityReviewer, now, now + 60_000).expect("session");
        let (out, kept, other) = (session(), session(), session());
        let api = store.issue("qa1", Role::QualityReviewer).expect("api token");
        let ended = |why| Err(Refusal::Ended { name: "qa1".into(), why });
        assert!(store.end_session(&out, Ended::Logout).expect("logout"));
        assert!(!store.end_session(&out, Ended::Logout).expect("again"), "once");
        assert!(!store.end_session(&api, Ended::Logout).expect("api"), "an API token is no session");
        assert_eq!(store.end_other_sessions("qa1", &kept).expect("others"), 1, "the logged-out one not counted");
        let replacing = store.issue("qa1", Role::QualityReviewer).expect("api token");
        for (token, why) in [(&out, Ended::Logout), (&other, Ended::PasswordChanged), (&api, Ended::Replaced)] {
            assert_eq!(store.check_at(token, now), ended(why), "{why:?}");
        }
        assert_eq!(store.holders(now)[0].sessions, 1, "ended sessions are no one's");
        assert_eq!(store.revoke("qa1").expect("revoke"), 2, "the live session and API token");
        let reopened = TokenStore::open(dir.path().join("tokens.json")).expect("reopen");
        for (token, why) in [(&kept, Ended::Disabled), (&replacing, Ended::Disabled), (&out, Ended::Logout)] {
            assert_eq!(reopened.check_at(token, now + 120_000), ended(why), "{why:?}, past the session's time too");
        }
        assert!(reopened.holders(now).is_empty());
        // Forgetting: by age, then the oldest past the bound.
        let token = |i: i64, ended_at: Option<i64>| StoredToken {
            name: format!("n{i}"),
            role: Role::Auditor,
            sha256: format!("h{i}"),
            expires_at: None,
            valid_until: None,
            password_change_only: false,
            ended: ended_at.map(|at| EndedAt { why: Ended::Replaced, at }),
        };
        let t0 = 100 * 86_400_000;
        let mut map: HashMap<String, StoredToken> = (0..MAX_ENDED as i64 + 5)
            .map(|i| token(i, Some(t0 + i)))
            .chain([token(-1, Some(t0 - KEEP_ENDED_MS)), token(-2, None)])
            .map(|t| (t.sha256.clone(), t))
            .collect();
        forget_old_ended(&mut map, t0 + 10);
        assert!(!map.contains_key("h-1"), "ended 30 days ago");
        assert!(map.contains_key("h-2"), "a live token stays");
        assert_eq!(map.len(), MAX_ENDED + 1, "{} ended kept", MAX_ENDED);
        assert!((0..5).all(|i| !map.contains_key(&format!("h{i}"))), "the oldest forgotten");
        // Sessions past their time are remembered as long as ended tokens.
        let session = |i: i64, expires_at: i64| StoredToken { expires_at: Some(expires_at), ..token(i, None) };
        let mut map: HashMap<String, StoredToken> =
            [session(1, t0 - KEEP_ENDED_MS), session(2, t0 - 86_400_000), session(3, t0 + 1)]
                .into_iter()
                .map(|t| (t.sha256.clone(), t))
                .collect();
        forget_old_ended(&mut map, t0);
        let mut kept: Vec<&str> = map.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["h2", "h3"], "expired 30 days ago forgotten; yesterday's and a live one kept");
    }

    /// An API token issued for a time works until then, and is then refused
    /// as expired (not as unknown), in another process too; the access
    /// review names when it stops and leaves it out once it has.
    #[test]
    fn an_api_token_issued_for_a_time_expires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::open(dir.path().join("tokens.json")).expect("open");
        let t = store.issue_valid_until("collector-7", Role::Collector, Some(1_000)).expect("issue");
        assert_eq!(store.check_at(&t, 999).map(|p| p.name), Ok("collector-7".to_owned()));
        assert_eq!(store.check_at(&t, 1_000), Err(Refusal::Expired { name: "collector-7".into(), at: 1_000 }));
        let reopened = TokenStore::open(dir.path().join("tokens.json")).expect("reopen");
        assert_eq!(reopened.check_at(&t, 2_000), Err(Refusal::Expired { name: "collector-7".into(), at: 1_000 }));
        let held = store.holders(999);
        assert_eq!(held[0].api_token_valid_until.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert!(store.holders(1_000).is_empty(), "an expired token is held by no one");
        // A new token replaces it, for good unless issued for a time.
        let again = store.issue("collector-7", Role::Collector).expect("reissue");
        let replaced = Refusal::Ended { name: "collector-7".into(), why: Ended::Replaced };
        assert_eq!(store.check_at(&t, 2_000), Err(replaced), "the replaced one is named as such");
        assert!(store.check_at(&again, i64::MAX).is_ok());
        assert_eq!(store.holders(2_000)[0].api_token_valid_until, None);
    }

    /// A session for a password that must change first says so, in the
    /// file too, until its holder has changed it; other sessions never do.
    #[test]
    fn a_password_change_session_is_marked_until_the_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::open(dir.path().join("tokens.json")).expect("open");
        let only = store.issue_password_change_session("qa1", Role::QualityReviewer, 0, 60_000).expect("session");
        let full = store.issue_session("qa1", Role::QualityReviewer, 0, 60_000).expect("session");
        let marked = |s: &TokenStore, t: &str| s.check_at(t, 1).map(|p| p.password_change_only);
        assert_eq!((marked(&store, &only), marked(&store, &full)), (Ok(true), Ok(false)));
        let reopened = TokenStore::open(dir.path().join("tokens.json")).expect("reopen");
        assert_eq!(marked(&reopened, &only), Ok(true), "kept in the file");
        store.password_changed(&only).expect("changed");
        assert_eq!(marked(&store, &only), Ok(false));
        assert_eq!(marked(&reopened, &only), Ok(false), "another process sees it too");
    }

    /// A session unused past the idle limit ends (the next request finds it
    /// ended, and so does every later one); use keeps it going; API tokens
    /// have no idle limit.
    #[test]
    fn idle_sessions_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::open(dir.path().join("tokens.json")).expect("open").with_session_idle(60_000);
        let api = store.issue("ops", Role::Admin).expect("api token");
        let busy = store.issue_session("qa1", Role::QualityReviewer, 0, 8 * 3_600_000).expect("session");
        let idle = store.issue_session("qa1", Role::QualityReviewer, 0, 8 * 3_600_000).expect("session");
        let never_used = store.issue_session("qa1", Role::QualityReviewer, 0, 8 * 3_600_000).expect("session");
        assert!(store.check_at(&busy, 0).is_ok() && store.check_at(&idle, 0).is_ok());
        assert!(store.check_at(&never_used, 60_001).is_err(), "idle from its login on");
        for minute in 1..=5 {
            assert!(store.check_at(&busy, minute * 50_000).is_ok(), "in use at {minute}");
        }
        let qa1 = Principal { name: "qa1".into(), role: Role::QualityReviewer, password_change_only: false };
        assert_eq!(store.check_at(&idle, 250_000), Err(Refusal::Idle { who: qa1, idle_ms: 60_000 }), "unused");
        let ended = || Err(Refusal::Ended { name: "qa1".into(), why: Ended::Idle });
        assert_eq!(store.check_at(&idle, 250_001), ended(), "and stays ended");
        let reopened = TokenStore::open(dir.path().join("tokens.json")).expect("reopen");
        assert_eq!(reopened.check_at(&idle, 250_002), ended(), "ended in the file too");
        assert!(store.check_at(&api, 7 * 3_600_000).is_ok(), "API tokens do not idle out");
        let off = TokenStore::open(dir.path().join("tokens.json")).expect("open");
        assert!(off.check_at(&busy, 7 * 3_600_000).is_ok(), "0: only the 8 hours end a session");
    }

    /// Requests that find the same session idle at once: exactly one is
    /// told it went idle (and so audits the logoff); the others find no token.
    #[test]
    fn an_idle_session_found_by_many_requests_at_once_ends_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::open(dir.path().join("tokens.json")).expect("open").with_session_idle(60_000);
        for round in 0..5 {
            let session = store.issue_session("qa1", Role::QualityReviewer, 0, 8 * 3_600_000).expect("session");
            let start = std::sync::Barrier::new(8);
            let idle = std::thread::scope(|s| {
                let seen: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            store.check_at(&session, 120_000)
                        })
                    })
                    .collect();
                seen.into_iter()
                    .map(|t| t.join().expect("thread"))
                    .filter(|r| matches!(r, Err(Refusal::Idle { .. })))
                    .count()
            });
            assert_eq!(idle, 1, "round {round}");
        }
    }

    /// Logins write the file outside the lock, so they overlap each other and
    /// token checks: every session issued still works, in memory and in the
    /// file (an older list written last, or read back mid-write, would lose one).
    #[test]
    fn sessions_issued_together_are_all_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.json");
        let store = std::sync::Arc::new(TokenStore::open(path.clone()).expect("open"));
        let now = ingest::source::now_millis();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            let token = store.issue_session(&format!("u{t}-{i}"), Role::Auditor, now, now + 60_000);
                            assert_eq!(store.authenticate("cus_nobody"), None);
                            token.expect("session")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let tokens: Vec<String> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
        let reopened = TokenStore::open(path).expect("reopen");
        for token in &tokens {
            assert!(store.authenticate(token).is_some(), "lost in memory");
            assert!(reopened.authenticate(token).is_some(), "lost in the file");
        }
    }
}
