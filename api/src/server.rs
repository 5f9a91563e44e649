//! The HTTP API under `/api/v1`. Every route but the health probes needs a
//! bearer token; what each role may do is the table in [`permits`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ingest::bus::Publisher;
use ingest::source::now_millis;
use ingest::time::{format_rfc3339, parse_rfc3339};
use ingest::{Format, RawRecord};
use ledger::Ledger;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, Role, TokenStore};
use crate::pipeline::PipelineStats;
use crate::reload::{ReloadError, Reloads};
use crate::views::{Stored, Views};

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ReadIncidents,
    ReadEvents,
    ReadLedger,
    ReadMetrics,
    Ingest,
    /// See, acknowledge and shelve control-room alarms.
    HandleAlarms,
    /// Reload the correlation rules.
    ManageRules,
    /// Reload the plant inventory (zones, assets, people, windows, tickets).
    ManageInventory,
    /// Move incidents through their states.
    HandleIncidents,
    /// Export evidence bundles.
    ExportEvidence,
    /// Sign records (e-signatures).
    Sign,
    /// Set retention policies.
    SetRetention,
    /// Place legal holds.
    PlaceLegalHold,
    /// See who has access: accounts, roles, tokens (an access review).
    ReviewAccess,
    /// See who is on site now, and where, by their badges.
    ReadPresence,
}

/// The permission table: which role may do what.
pub fn permits(role: Role, p: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Admin => true,
        Role::SocAnalyst => {
            matches!(p, ReadIncidents | ReadEvents | ReadLedger | HandleAlarms | HandleIncidents | ReadPresence)
        }
        Role::QualityReviewer => matches!(
            p,
            ReadIncidents
                | ReadEvents
                | ReadLedger
                | ExportEvidence
                | Sign
                | PlaceLegalHold
                | ReviewAccess
                | ReadPresence
        ),
        Role::Auditor => matches!(p, ReadIncidents | ReadEvents | ReadLedger | ExportEvidence | ReviewAccess),
        // Who is inside, for a muster when the plant is evacuated.
        Role::ControlRoom => matches!(p, ReadIncidents | HandleAlarms | ReadPresence),
        Role::Collector => matches!(p, Ingest),
        Role::Monitoring => matches!(p, ReadMetrics),
    }
}

/// A JSON error: a stable `code` and a message that never carries internals.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header, when the server is busy.
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// A search or query stopped at its time limit.
    fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "timeout", message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody { error: ErrorDetail { code: self.code, message: self.message } });
        match self.retry_after {
            Some(s) => (self.status, [(header::RETRY_AFTER, s.to_string())], body).into_response(),
            None => (self.status, body).into_response(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}

struct Inner {
    views: Arc<Views>,
    ledger: Arc<Ledger>,
    tokens: Arc<TokenStore>,
    raw: Publisher<RawRecord>,
    push: HashMap<String, Format>,
    stats: Arc<PipelineStats>,
    reload: Reloads,
    /// The key that signs bundle manifests, and the data directory: bundles
    /// are written there while they are made (each in a file without a name,
    /// gone when it has been sent or the process ends), and its free room is
    /// a metric.
    evidence: Option<(Arc<ledger::NoteSigner>, PathBuf)>,
    /// People's accounts, for e-signatures.
    accounts: Option<Arc<crate::accounts::AccountStore>>,
    /// Search over the index that follows the ledger, and how far it got.
    search: Option<(crate::search::Searcher, Arc<crate::follow::FollowState>)>,
    /// SQL over the Parquet archive.
    sql: Option<crate::sql::SqlEngine>,
    /// Turns for evidence exports and SQL queries.
    turns: Turns,
    /// Requests refused for their token, reported at most once a minute each.
    token_refusals: std::sync::Mutex<crate::sign_in::TokenRefusals>,
    /// Who is on site, asked of the engine's owner.
    on_site: Option<crate::on_site::OnSiteAsks>,
}

/// How many evidence exports and SQL queries run at once. A query holds up to
/// its memory limit, and an export keeps a core busy for seconds and its
/// bundle on disk (up to ~340 MB) until sent, so a morning's worth of
/// reviewers pressing export together must not take the server from the
/// ledger. Callers past the limit wait their turn, up to `wait`, then get 503.
#[derive(Debug, Clone)]
pub struct Turns {
    exports: Arc<tokio::sync::Semaphore>,
    sql: Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
    /// Bytes the data directory must have free for an export to start.
    export_room: u64,
}

impl Turns {
    /// How long a caller waits for a turn before 503 `busy`.
    pub const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
    /// Free bytes an export leaves the ledger at least: a bundle (up to
    /// ~340 MB) must never take the last room the ledger appends into.
    pub const EXPORT_ROOM: u64 = 1 << 30;

    pub fn new(exports: usize, sql: usize, wait: std::time::Duration) -> Self {
        use tokio::sync::Semaphore;
        Self {
            exports: Arc::new(Semaphore::new(exports)),
            sql: Arc::new(Semaphore::new(sql)),
            wait,
            export_room: Self::EXPORT_ROOM,
        }
    }

    /// Sets the free bytes an export needs in the data directory to start.
    pub fn with_export_room(self, bytes: u64) -> Self {
        Self { export_room: bytes, ..self }
    }
}

impl Default for Turns {
    fn default() -> Self {
        let http = crate::config::HttpConfig::default();
        Self::new(http.max_concurrent_exports.get(), http.max_concurrent_sql.get(), Self::WAIT)
    }
}

/// A turn at `kind` of work from `turns`, waiting up to `wait` for one.
async fn take_turn(
    turns: &Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
    kind: &str,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(wait, turns.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError {
            retry_after: Some(10),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "as many {kind} as the server runs at once are running, and this one waited {:.1} s for its turn; retry shortly",
                    wait.as_secs_f64()
                ),
            )
        }),
    }
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn new(
        views: Arc<Views>,
        ledger: Arc<Ledger>,
        tokens: Arc<TokenStore>,
        raw: Publisher<RawRecord>,
        push: HashMap<String, Format>,
        stats: Arc<PipelineStats>,
        reload: Reloads,
    ) -> Self {
        Self(Arc::new(Inner {
            views,
            ledger,
            tokens,
            raw,
            push,
            stats,
            reload,
            evidence: None,
            accounts: None,
            search: None,
            sql: None,
            turns: Turns::default(),
            token_refusals: std::sync::Mutex::new(crate::sign_in::TokenRefusals::new(
                crate::sign_in::TokenRefusals::EVERY_MS,
                crate::sign_in::TokenRefusals::MAX_KEYS,
            )),
            on_site: None,
        }))
    }

    /// Answers who is on site, from the engine whose owner serves `asks`.
    pub fn with_on_site(mut self, asks: crate::on_site::OnSiteAsks) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.on_site = Some(asks);
        }
        self
    }

    /// Sets how many exports and SQL queries run at once.
    pub fn with_turns(mut self, turns: Turns) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.turns = turns;
        }
        self
    }

    /// Enables e-signatures against these accounts.
    pub fn with_accounts(mut self, accounts: Arc<crate::accounts::AccountStore>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.accounts = Some(accounts);
        }
        self
    }

    /// Enables search and SQL over the views that follow the ledger.
    pub fn with_search(
        mut self,
        searcher: crate::search::Searcher,
        state: Arc<crate::follow::FollowState>,
        sql: crate::sql::SqlEngine,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.search = Some((searcher, state));
            inner.sql = Some(sql);
        }
        self
    }

    /// Enables evidence exports, their bundles signed with `signer` and
    /// written in `data_dir` (on disk: a bundle can be hundreds of megabytes).
    pub fn with_evidence(mut self, signer: ledger::NoteSigner, data_dir: PathBuf) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.evidence = Some((Arc::new(signer), data_dir));
        }
        self
    }
}

/// The authenticated caller. Rejects with 401 without a valid bearer token.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?;
        let now = now_millis();
        let from = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let refused = |why, name| crate::sign_in::TokenRefusalKey { why, name, from: from.map(|ip| ip.to_canonical()) };
        match state.0.tokens.check_at(token, now) {
            Ok(who) => Ok(Caller(who)),
            Err(crate::auth::Refusal::Unknown) => {
                report_refused_token(state, refused(crate::sign_in::TokenRefusal::Unknown, None), now).await;
                Err(unauthorized("invalid token"))
            }
            Err(crate::auth::Refusal::Ended { name, why }) => {
                report_refused_token(state, refused(crate::sign_in::TokenRefusal::Ended(why), Some(name)), now).await;
                let told = match why {
                    crate::auth::Ended::Replaced => "a newer API token replaced it",
                    crate::auth::Ended::Disabled => "its account was disabled",
                    _ => "the session ended; log in again",
                };
                Err(unauthorized(&format!("the token is no longer valid: {told}")))
            }
            Err(crate::auth::Refusal::Expired { name, at }) => {
                report_refused_token(state, refused(crate::sign_in::TokenRefusal::Expired, Some(name)), now).await;
                Err(unauthorized(&format!(
                    "the API token expired at {}; `custos user token` issues a new one",
                    format_rfc3339(at)
                )))
            }
            Err(crate::auth::Refusal::SessionExpired { name, at }) => {
                report_refused_token(state, refused(crate::sign_in::TokenRefusal::SessionExpired, Some(name)), now)
                    .await;
                Err(unauthorized(&format!("the session expired at {}; log in again", format_rfc3339(at))))
            }
            Err(crate::auth::Refusal::Idle { who, idle_ms }) => {
                let minutes = idle_ms / 60_000;
                audit(state, &who, "logout.idle", "", json!({"idle_minutes": minutes})).await?;
                Err(unauthorized(&format!("the session ended after {minutes} minutes without use; log in again")))
            }
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The bearer token a request carries.
fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| unauthorized("missing bearer token"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| unauthorized("authorization must be: Bearer <token>"))
}

impl Caller {
    fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.0.password_change_only {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "choose your own password first (POST /api/v1/password); this session may do nothing else",
            ));
        }
        if permits(self.0.role, p) {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("role {:?} may not {p:?}", self.0.role)))
        }
    }
}

/// Every documented route: handlers and their OpenAPI operations are registered together.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(list_accounts))
        .routes(routes!(list_incidents))
        .routes(routes!(get_incident))
        .routes(routes!(transition_incident))
        .routes(routes!(add_incident_note))
        .routes(routes!(review_audit_trail))
        .routes(routes!(assign_incident))
        .routes(routes!(incident_timeline))
        .routes(routes!(list_events))
        .routes(routes!(search))
        .routes(routes!(query_sql))
        .routes(routes!(list_alerts))
        .routes(routes!(list_dead_letters))
        .routes(routes!(list_collectors))
        .routes(routes!(checkpoint))
        .routes(routes!(ledger_record))
        .routes(routes!(consistency_proof))
        .routes(routes!(in_force))
        .routes(routes!(export_evidence))
        .routes(routes!(sign_record))
        .routes(routes!(list_retention, set_retention))
        .routes(routes!(place_legal_hold))
        .routes(routes!(ingest_push))
        .routes(routes!(reload_rules))
        .routes(routes!(reload_inventory))
        .routes(routes!(list_alarms))
        .routes(routes!(on_site))
        .routes(routes!(acknowledge_alarm))
        .routes(routes!(shelve_alarm))
        .routes(routes!(unshelve_alarm))
        .routes(routes!(metrics))
}

/// The OpenAPI 3.1 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

pub fn router(state: AppState, max_body: usize) -> Router {
    routes()
        .split_for_parts()
        .0
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe_request))
        .with_state(state)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Custos API",
        description = "Security event correlation and GxP audit trail for OT plants. Every route but the health \
                       probes and login needs `Authorization: Bearer <token>`; errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components.get_or_insert_with(Default::default).add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("cus_…").build()),
        );
    }
}

/// An error as every route answers it.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    /// Stable, for programs: bad_request, unauthorized, forbidden, not_found, …
    code: &'static str,
    /// For people; never carries internals.
    message: String,
}

#[utoipa::path(get, path = "/healthz", tag = "health", summary = "Alive", responses((status = 200, description = "Alive", body = crate::schemas::Alive)))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "health",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", body = Object), (status = 401, description = "No or unknown token", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn openapi_json(_caller: Caller) -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
}

/// Counts and times every request by its route pattern (ids do not make new
/// series); requests that match no route count as `unmatched`.
async fn observe_request(
    State(s): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = answer_panics(&route, &method, next.run(request)).await;
    s.0.stats.http.observe(&route, &method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// A handler that panics (a bug, here or in a library) answers 500 with a
/// JSON error like any other, instead of the connection closing without an
/// answer; the panic is logged with its route. (Handler state is behind
/// poison-tolerant locks, so the server goes on serving.)
async fn answer_panics(route: &str, method: &str, handler: impl Future<Output = Response>) -> Response {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(method, route, panic = what, "request handler panicked");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed on this request; it is logged",
            )
            .into_response()
        }
    }
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Ready: the ledger has a signed checkpoint",
    responses((status = 200, description = "Ready", body = crate::schemas::Ready), (status = 503, description = "Not available now", body = ErrorBody))
)]
async fn readyz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    if s.0.ledger.latest_checkpoint().is_none() {
        return Err(ApiError::unavailable("no signed checkpoint yet"));
    }
    Ok(Json(json!({"status": "ready", "ledger_size": s.0.ledger.size()})))
}

/// An incident as the API shows it: times in RFC 3339 and the severity by name too.
pub(crate) fn incident_json(i: &correlate::Incident) -> Value {
    let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("severity".into(), crate::search::severity_name(u64::from(i.severity_id)).into());
        o.insert("opened_at".into(), format_rfc3339(i.opened_at).into());
        o.insert("last_alert_at".into(), format_rfc3339(i.last_alert_at).into());
        o.insert("state".into(), i.state.as_str().into());
    }
    v
}

/// A ledgered item as JSON with its `ledger_index`, the handle for its inclusion proof.
pub(crate) fn indexed_json<T: serde::Serialize>(stored: &Stored<T>) -> Value {
    let mut v = serde_json::to_value(&*stored.item).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("ledger_index".into(), stored.index.into());
    }
    v
}

const MAX_LIMIT: usize = 1000;

/// A caller's own time limit, `timeout_ms`: at most the server's `max`.
fn timeout_param(ms: Option<u64>, max: std::time::Duration) -> Result<Option<std::time::Duration>, ApiError> {
    match ms {
        None => Ok(None),
        Some(ms @ 1..) if u128::from(ms) <= max.as_millis() => Ok(Some(std::time::Duration::from_millis(ms))),
        Some(_) => Err(ApiError::bad_request(format!("timeout_ms must be between 1 and {}", max.as_millis()))),
    }
}

fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    match l {
        None => Ok(100),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) if n > MAX_LIMIT => Err(ApiError::bad_request(format!("limit must be at most {MAX_LIMIT}"))),
        Some(n) => Ok(n),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct IncidentQuery {
    /// One state or several, comma-separated (`new,acknowledged,investigating`: the open ones).
    #[param(
        pattern = "^(new|acknowledged|investigating|closed|false_positive)(,(new|acknowledged|investigating|closed|false_positive))*$"
    )]
    state: Option<String>,
    rule: Option<String>,
    zone: Option<String>,
    /// At least this severity (informational … fatal).
    severity: Option<String>,
    /// Latest alert at or after / before (RFC 3339).
    from: Option<String>,
    to: Option<String>,
    /// Given to this account.
    assignee: Option<String>,
    /// `true`: given to no one (the queue still to take); `false`: given to someone.
    unassigned: Option<bool>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

fn severity_id(name: &str) -> Result<u8, ApiError> {
    (1..=6u8).find(|id| crate::search::severity_name(u64::from(*id)) == name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "severity {name:?} is not one of informational, low, medium, high, critical, fatal"
        ))
    })
}

/// `new,acknowledged`: the states named, each one that exists.
fn incident_states(names: &str) -> Result<Vec<correlate::IncidentState>, ApiError> {
    names
        .split(',')
        .map(|name| {
            correlate::IncidentState::from_name(name.trim()).ok_or_else(|| {
                let states: Vec<_> = correlate::IncidentState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(format!("state {name:?} is not one of {}", states.join(", ")))
            })
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    summary = "Incidents, newest first, filtered",
    params(IncidentQuery),
    responses((status = 200, description = "Incidents", body = crate::schemas::Incidents), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_incidents(
    caller: Caller,
    State(s): State<AppState>,
    q: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadIncidents)?;
    let Query(q) = q?;
    let n = limit(q.limit)?;
    let min_severity = q.severity.as_deref().map(severity_id).transpose()?.unwrap_or(0);
    let (from, to) = (time_param("from", q.from.as_deref())?, time_param("to", q.to.as_deref())?);
    let states = q.state.as_deref().map(incident_states).transpose()?;
    let book = s.0.views.incidents.read().unwrap_or_else(|e| e.into_inner());
    let list: Vec<Value> = book
        .list(to)
        .filter(|i| i.severity_id >= min_severity)
        .filter(|i| from.is_none_or(|t| i.last_alert_at >= t) && to.is_none_or(|t| i.last_alert_at < t))
        .filter(|i| states.as_ref().is_none_or(|st| st.contains(&i.state)))
        .filter(|i| q.rule.as_deref().is_none_or(|r| i.rules.iter().any(|x| x == r)))
        .filter(|i| q.zone.as_deref().is_none_or(|z| i.zone.as_deref() == Some(z)))
        .filter(|i| q.assignee.as_deref().is_none_or(|a| i.assignee.as_deref() == Some(a)))
        .filter(|i| q.unassigned.is_none_or(|u| u == i.assignee.is_none()))
        .take(n)
        .map(incident_json)
        .collect();
    Ok(Json(json!({"incidents": list})))
}

fn find_incident(s: &AppState, id: &str) -> Result<correlate::Incident, ApiError> {
    s.0.views
        .incidents
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))
}

/// A ledger record's data as a `T`, when it is of `kind`.
fn ledgered<T: serde::de::DeserializeOwned>(bytes: &[u8], kind: ledger::RecordKind) -> Option<T> {
    // Peeked first, then read straight into `T`: no JSON tree in between.
    if ledger::record::peek(bytes).is_some_and(|(k, _)| k != kind) {
        return None;
    }
    let r = ledger::record::decode_as::<T>(bytes).ok()?;
    (r.kind == kind).then_some(r.data)
}

/// One page of an incident's timeline.
struct TimelinePage {
    entries: Vec<Value>,
    /// The cursor of the page after this one, when there is one.
    next: Option<String>,
    /// Entries in the whole timeline.
    total: usize,
}

/// A timeline entry before it is shown: an event or an alert.
enum Entry {
    Event(Arc<ingest::Event>),
    Alert(Stored<correlate::Alert>),
    /// An event or alert read back from the ledger: only its time is read
    /// until a page shows it (a thousand alerts' full decoding took 10 ms).
    Ledgered(ledger::RecordKind, Vec<u8>),
}

/// An event's or alert's time, read without the rest of it.
#[derive(Deserialize)]
struct TimeOf {
    time: i64,
}

/// `<event time, ms>:<ledger index>` of the last entry a page showed.
fn timeline_cursor(after: Option<&str>) -> Result<Option<(i64, u64)>, ApiError> {
    after
        .map(|c| {
            c.split_once(':').and_then(|(t, i)| Some((t.parse().ok()?, i.parse().ok()?))).ok_or_else(|| {
                ApiError::bad_request(format!("after {c:?} is not a timeline cursor (`next` of a page)"))
            })
        })
        .transpose()
}

/// The cyber-physical timeline of an incident: its contributing events and
/// its alerts (from the recent views, else from the ledger), in event-time
/// order, each with its ledger index; the `limit` entries after `after`.
/// Only those are made into JSON: an incident can hold a thousand alerts.
fn timeline(s: &AppState, inc: &correlate::Incident, after: Option<(i64, u64)>, limit: usize) -> TimelinePage {
    let mut items: Vec<(i64, u64, Entry)> = Vec::with_capacity(inc.events.len() + inc.alerts.len());
    // Entries no longer among the recent ones are read from the ledger in
    // one batch (nearby records in one pass), as an incident's are close.
    let (mut older_events, mut older_alerts): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    for &index in &inc.events {
        match s.0.views.event(index) {
            Some(st) => items.push((st.item.time, index, Entry::Event(st.item))),
            None => older_events.push(index),
        }
    }
    for id in &inc.alerts {
        match s.0.views.alert(id) {
            Some(Ok(a)) => items.push((a.item.time, a.index, Entry::Alert(a))),
            Some(Err(index)) => older_alerts.push(index),
            None => {}
        }
    }
    older_alerts.sort_unstable();
    let older = [older_events.as_slice(), older_alerts.as_slice()].concat();
    let read = s.0.ledger.records_at(&older, |index, bytes| {
        let kind = match older_alerts.binary_search(&index) {
            Ok(_) => ledger::RecordKind::Alert,
            Err(_) => ledger::RecordKind::Event,
        };
        if let Some(TimeOf { time }) = ledgered(&bytes, kind) {
            items.push((time, index, Entry::Ledgered(kind, bytes)));
        }
    });
    if let Err(e) = read {
        tracing::warn!(error = %e, incident = %inc.id, "timeline entries could not be read from the ledger");
    }
    items.sort_by_key(|(t, i, _)| (*t, *i));
    let total = items.len();
    let start = after.map_or(0, |c| items.partition_point(|(t, i, _)| (*t, *i) <= c));
    let end = total.min(start + limit);
    let next = (end < total && end > start).then(|| format!("{}:{}", items[end - 1].0, items[end - 1].1));
    let entries = items
        .drain(start..end)
        .map(|(time, index, entry)| {
            let (mut v, kind) = match entry {
                Entry::Event(e) => (serde_json::to_value(&*e).unwrap_or(Value::Null), "event"),
                Entry::Alert(a) => (serde_json::to_value(&*a.item).unwrap_or(Value::Null), "alert"),
                Entry::Ledgered(kind, bytes) => {
                    let full = match kind {
                        ledger::RecordKind::Alert => {
                            ledgered::<correlate::Alert>(&bytes, kind).and_then(|a| serde_json::to_value(a).ok())
                        }
                        _ => ledgered::<ingest::Event>(&bytes, kind).and_then(|e| serde_json::to_value(e).ok()),
                    };
                    // What the ledger holds, if it does not read as its kind.
                    let shown = full.or_else(|| ledger::record::decode(&bytes).ok().map(|r| r.data));
                    (shown.unwrap_or(Value::Null), if kind == ledger::RecordKind::Alert { "alert" } else { "event" })
                }
            };
            if let Some(o) = v.as_object_mut() {
                o.insert("ledger_index".into(), index.into());
                o.insert("entry".into(), kind.into());
                o.insert("at".into(), format_rfc3339(time).into());
            }
            v
        })
        .collect();
    TimelinePage { entries, next, total }
}

/// The entries an incident's detail shows of its timeline; the rest are a
/// `timeline_next` away.
const DETAIL_TIMELINE: usize = 100;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    /// The `next` of the page before (entries after it).
    #[param(pattern = "^-?[0-9]{1,19}:[0-9]{1,20}$")]
    after: Option<String>,
    /// Entries in this page (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    summary = "One incident with its cyber-physical timeline",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, description = "Incident", body = crate::schemas::IncidentDetail), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn get_incident(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadIncidents)?;
    let inc = find_incident(&s, &id)?;
    let mut v = incident_json(&inc);
    let page = timeline(&s, &inc, None, DETAIL_TIMELINE);
    if let Some(o) = v.as_object_mut() {
        o.insert("timeline".into(), page.entries.into());
        o.insert("timeline_next".into(), page.next.into());
        o.insert("timeline_total".into(), page.total.into());
    }
    Ok(Json(v))
}

/// `GET /api/v1/incidents/{id}/timeline`: events and alerts in event-time order.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}/timeline",
    tag = "incidents",
    summary = "Contributing events and alerts in event-time order",
    params(("id" = String, Path, description = "Incident id"), TimelineQuery),
    responses((status = 200, description = "Timeline", body = crate::schemas::Timeline), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn incident_timeline(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadIncidents)?;
    let Query(q) = q?;
    let limit = match q.limit {
        None => MAX_LIMIT,
        n => limit(n)?,
    };
    let after = timeline_cursor(q.after.as_deref())?;
    let inc = find_incident(&s, &id)?;
    let page = timeline(&s, &inc, after, limit);
    Ok(Json(json!({"incident": inc.id, "timeline": page.entries, "next": page.next, "total": page.total})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    class_uid: Option<u32>,
    zone: Option<String>,
    source: Option<String>,
    person: Option<String>,
    asset: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    summary = "Recent events, newest first",
    params(EventQuery),
    responses((status = 200, description = "Events", body = crate::schemas::Events), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_events(
    caller: Caller,
    State(s): State<AppState>,
    q: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadEvents)?;
    let Query(q) = q?;
    let n = limit(q.limit)?;
    let events = s.0.views.events(n, |e| {
        q.class_uid.is_none_or(|c| e.class_uid == c)
            && q.zone.as_deref().is_none_or(|z| e.zone.as_deref() == Some(z))
            && q.source.as_deref().is_none_or(|src| e.metadata.source == src)
            && q.person.as_deref().is_none_or(|p| e.person() == Some(p))
            && q.asset.as_deref().is_none_or(|a| e.device.as_ref().and_then(|d| d.asset.as_deref()) == Some(a))
    });
    let list: Vec<Value> = events.iter().map(indexed_json).collect();
    Ok(Json(json!({"events": list})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: Option<String>,
    /// RFC 3339; event time from (inclusive) and to (exclusive).
    from: Option<String>,
    to: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The previous page's `next_cursor`; it continues in the order it was
    /// issued for, and is refused with the other `order`.
    cursor: Option<String>,
    /// Comma-separated facet names.
    facets: Option<String>,
    /// `newest` first (the default) or `oldest` first, by event time then ledger index.
    #[param(pattern = "^(newest|oldest)$")]
    order: Option<String>,
    /// Stop with 422 after this many milliseconds (default and most 10000).
    #[param(minimum = 1, maximum = 10000)]
    timeout_ms: Option<u64>,
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value.map(|t| rfc3339_param(name, t)).transpose()
}

/// A required time, `name` in the message when it is not RFC 3339.
fn rfc3339_param(name: &str, t: &str) -> Result<i64, ApiError> {
    parse_rfc3339(t).ok_or_else(|| ApiError::bad_request(format!("{name}: {t:?} is not an RFC 3339 time")))
}

/// `GET /api/v1/search`: events, alerts and incidents, newest first, with
/// their ledger records. Every search is an `audit` record.
#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "search",
    summary = "Search events, alerts and incidents (audited)",
    params(SearchQuery),
    responses((status = 200, description = "A page of hits", body = crate::schemas::SearchPage), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 422, description = "Stopped at the time limit", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn search(
    caller: Caller,
    State(s): State<AppState>,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    use crate::search::{Cursor, SearchError, SearchRequest};
    caller.require(Permission::ReadEvents)?;
    let Query(q) = q?;
    let (searcher, state) = s.0.search.clone().ok_or_else(|| ApiError::unavailable("search is not enabled"))?;
    let req = || -> Result<SearchRequest, ApiError> {
        let oldest_first = match q.order.as_deref() {
            None | Some("newest") => false,
            Some("oldest") => true,
            Some(other) => return Err(ApiError::bad_request(format!("order {other:?} is not newest or oldest"))),
        };
        Ok(SearchRequest {
            q: q.q.clone().unwrap_or_default(),
            from: time_param("from", q.from.as_deref())?,
            to: time_param("to", q.to.as_deref())?,
            limit: limit(q.limit)?,
            cursor: q
                .cursor
                .as_deref()
                .map(|c| Cursor::parse(c, oldest_first))
                .transpose()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            facets: q
                .facets
                .as_deref()
                .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default(),
            time_limit: timeout_param(q.timeout_ms, crate::search::TIME_LIMIT)?,
            oldest_first,
        })
    };
    // A refused search is an access attempt too, as a refused SQL query is.
    let refuse = |refused: ApiError| async {
        let details = json!({"q": q.q, "from": q.from, "to": q.to, "refused": refused.message});
        audit(&s, &caller.0, "search", "", details).await?;
        Err::<Json<Value>, _>(refused)
    };
    let req = match req() {
        Ok(req) => req,
        Err(refused) => return refuse(refused).await,
    };
    let oldest_first = req.oldest_first;
    let outcome = tokio::task::spawn_blocking(move || searcher.search(&req))
        .await
        .map_err(|_| ApiError::unavailable("the search stopped"))?;
    let page = match outcome {
        Ok(page) => page,
        Err(e) => {
            let refused = match e {
                SearchError::Query(m) => ApiError::bad_request(m),
                e @ SearchError::Timeout(_) => ApiError::timeout(e.to_string()),
                SearchError::Index { .. } => {
                    tracing::error!(error = %e, "search failed");
                    ApiError::unavailable("the search index cannot answer now")
                }
            };
            return refuse(refused).await;
        }
    };
    let mut hits = Vec::with_capacity(page.hits.len());
    for h in &page.hits {
        let rec = s.0.ledger.record(h.index).ok().and_then(|b| ledger::record::decode(&b).ok());
        let Some(rec) = rec else { continue };
        hits.push(json!({
            "ledger_index": h.index, "kind": rec.kind, "time": format_rfc3339(h.time), "record": rec.data,
        }));
    }
    let facets: serde_json::Map<String, Value> = page
        .facets
        .iter()
        .map(|(name, counts)| {
            (name.clone(), counts.iter().map(|(v, n)| json!({"value": v, "count": n})).collect::<Vec<_>>().into())
        })
        .collect();
    audit(
        &s,
        &caller.0,
        "search",
        "",
        json!({"q": q.q, "from": q.from, "to": q.to, "total": page.total, "returned": hits.len()}),
    )
    .await?;
    Ok(Json(json!({
        "total": page.total,
        "total_exact": page.total_exact,
        "hits": hits,
        "next_cursor": page.next_cursor.map(|c| c.encode(oldest_first)),
        "facets": facets,
        "searchable_records": state.searchable.load(Ordering::Relaxed),
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
    /// At most this many rows back (default 1000, at most 10000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    max_rows: Option<usize>,
    /// Stop with 422 after this many milliseconds (default and most 30000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 30000)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/query/sql`: one read-only query over the Parquet archive.
/// Every query, answered or refused, is an `audit` record with its text.
#[utoipa::path(
    post,
    path = "/api/v1/query/sql",
    tag = "search",
    summary = "One read-only SQL query over the Parquet archive (audited)",
    request_body = SqlRequest,
    responses((status = 200, description = "Columns and rows", body = crate::schemas::SqlAnswer), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 422, description = "Stopped at the time limit", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn query_sql(caller: Caller, State(s): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    use crate::sql::{SqlError, SqlLimits};
    caller.require(Permission::ReadEvents)?;
    let r: SqlRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let max_rows = match r.max_rows {
        None => 1000,
        Some(n @ 1..=10_000) => n,
        Some(_) => return Err(ApiError::bad_request("max_rows must be between 1 and 10000")),
    };
    if r.sql.trim().is_empty() || r.sql.len() > 65_536 {
        return Err(ApiError::bad_request("sql must be a query of at most 65536 bytes"));
    }
    let defaults = SqlLimits::default();
    let timeout = timeout_param(r.timeout_ms, defaults.timeout)?.unwrap_or(defaults.timeout);
    let engine = s.0.sql.clone().ok_or_else(|| ApiError::unavailable("sql is not enabled"))?;
    // A caller who set a short time limit does not wait longer than it for a turn.
    let turn = match take_turn(&s.0.turns.sql, s.0.turns.wait.min(timeout), "SQL queries").await {
        Ok(turn) => turn,
        Err(busy) => {
            let details = json!({"sql": r.sql, "refused": busy.message});
            audit(&s, &caller.0, "query.sql", &r.reason, details).await?;
            return Err(busy);
        }
    };
    let started = std::time::Instant::now();
    let outcome = engine.query(&r.sql, SqlLimits { max_rows, timeout, ..defaults }).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    drop(turn);
    let details = match &outcome {
        Ok(res) => json!({"sql": r.sql, "rows": res.rows.len(), "truncated": res.truncated, "elapsed_ms": elapsed_ms}),
        Err(e) => json!({"sql": r.sql, "refused": e.to_string(), "elapsed_ms": elapsed_ms}),
    };
    audit(&s, &caller.0, "query.sql", &r.reason, details).await?;
    match outcome {
        Ok(res) => Ok(Json(json!({
            "columns": res.columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
            "rows": res.rows,
            "truncated": res.truncated,
            "elapsed_ms": elapsed_ms,
        }))),
        Err(SqlError::Query(m)) => Err(ApiError::bad_request(m)),
        Err(e @ SqlError::Timeout(_)) => Err(ApiError::timeout(e.to_string())),
        Err(e @ SqlError::Engine(_)) => {
            tracing::error!(error = %e, "sql engine failed");
            Err(ApiError::unavailable("the query could not be run"))
        }
    }
}

/// The latest signed checkpoint: its note and the tree size it signs.
fn signed_checkpoint(s: &AppState) -> Result<(String, u64), ApiError> {
    let note = s.0.ledger.latest_checkpoint().ok_or_else(not_yet_signed)?;
    let cp = ledger::Checkpoint::of_note(&note).map_err(|_| ApiError::unavailable("the checkpoint cannot be read"))?;
    Ok((note.clone(), cp.size))
}

/// The ledger has no signed checkpoint yet (one is signed within a second of
/// the first records): the caller retries.
fn not_yet_signed() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "not_yet_signed", "the ledger has no signed checkpoint yet; retry shortly")
}

fn hexes(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    name: String,
    password: String,
}

/// How long a login session lasts.
const SESSION_MS: i64 = 8 * 3_600_000;

/// `POST /api/v1/login`: a person's name and password for a session token
/// that expires; repeated failures lock the account. Every attempt is audited.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "accounts",
    summary = "A session token for a name and password (8 h; lock-out after 5 failures)",
    request_body = LoginRequest,
    responses((status = 200, description = "Session token; with `password_change_required` (temporary or expired) the session may only change the password or log out", body = crate::schemas::Session), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 401, description = "Wrong name or password", body = ErrorBody), (status = 403, description = "Account locked or disabled", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody))
)]
async fn login(State(s): State<AppState>, peer: Option<Peer>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: LoginRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let accounts = s.0.accounts.clone().ok_or_else(|| ApiError::unavailable("accounts are not enabled"))?;
    let now = now_millis();
    let checked = check_password(&s, &accounts, crate::sign_in::Via::Login, &req.name, req.password, peer, now).await?;
    let expires_at = now + SESSION_MS;
    let session = checked.and_then(|account| {
        let token = accounts.start_session(&s.0.tokens, &account, now, expires_at)?;
        Ok((account, token))
    });
    let (action, outcome) = match session {
        Ok((account, token)) => {
            let due = account.change_due(accounts.policy(), now);
            let who = Principal { name: account.name.clone(), role: account.role, password_change_only: due.is_some() };
            let mut answer = json!({"token": token, "role": account.role, "expires_at": format_rfc3339(expires_at)});
            if let Some(at) = account.password_expires_at(accounts.policy()) {
                answer["password_expires_at"] = format_rfc3339(at).into();
            }
            let mut details = json!({"expires_at": format_rfc3339(expires_at)});
            if let Some(due) = due {
                answer["password_change_required"] = due.name().into();
                details["password_change_required"] = due.name().into();
            }
            audit(&s, &who, "login", "", details).await?;
            return Ok(Json(answer));
        }
        Err(crate::accounts::PasswordError::Store(_)) => {
            ("login.failed", ApiError::unavailable("cannot store the session or the failure count"))
        }
        Err(crate::accounts::PasswordError::Locked) => {
            ("login.refused", ApiError::new(StatusCode::FORBIDDEN, "locked", "the account is locked; try again later"))
        }
        Err(crate::accounts::PasswordError::Disabled) => {
            ("login.refused", ApiError::new(StatusCode::FORBIDDEN, "disabled", "the account is disabled"))
        }
        Err(_) => (
            "login.failed",
            ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", "the name or the password is not right"),
        ),
    };
    let entry = crate::audit::Entry {
        actor: &req.name,
        printed_name: None,
        role: None,
        action,
        reason: "",
        details: json!({}),
    };
    let rec = crate::audit::encode(&entry).map_err(|_| ApiError::unavailable("cannot record the attempt"))?;
    s.0.ledger.append(vec![rec]).await.map_err(|_| ApiError::unavailable("the ledger is not writable"))?;
    Err(outcome)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    /// At least 12 characters; not the current one.
    #[schema(min_length = 12)]
    new_password: String,
}

/// `POST /api/v1/password`: the caller changes its own password, giving
/// the current one (a wrong one counts towards the lock-out, as at login).
/// The caller's other sessions end; this one and the API token stay. Every
/// attempt is audited, and is a sign-in event.
#[utoipa::path(
    post,
    path = "/api/v1/password",
    tag = "accounts",
    summary = "Change your own password (audited; your other sessions end)",
    request_body = PasswordChange,
    responses((status = 200, description = "Changed", body = crate::schemas::PasswordChanged), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 401, description = "No or unknown token, or the current password is not right", body = ErrorBody), (status = 403, description = "Locked, disabled, or no account for this token's holder", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn change_password(
    caller: Caller,
    State(s): State<AppState>,
    peer: Option<Peer>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    use crate::accounts::PasswordError as P;
    let req: PasswordChange = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let token = bearer(&headers)?.to_owned();
    let accounts = s.0.accounts.clone().ok_or_else(|| ApiError::unavailable("accounts are not enabled"))?;
    let now = now_millis();
    let name = caller.0.name.clone();
    let changed = tokio::task::spawn_blocking({
        let accounts = accounts.clone();
        move || accounts.change_password(&name, &req.current_password, &req.new_password, now)
    })
    .await
    .map_err(|_| ApiError::unavailable("the password check stopped"))?;
    report_sign_in(&s, &accounts, crate::sign_in::Via::PasswordChange, &caller.0.name, peer, now, &changed).await;
    let ended = match &changed {
        Ok(_) => s.0.tokens.end_other_sessions(&caller.0.name, &token).map_err(|e| e.to_string()).and_then(|n| {
            // A session kept to change a temporary or expired password may now do the rest.
            if caller.0.password_change_only {
                s.0.tokens.password_changed(&token).map_err(|e| e.to_string())?;
            }
            Ok(n)
        }),
        Err(_) => Ok(0),
    };
    let details = match (&changed, &ended) {
        (Ok(_), Ok(n)) => json!({"via": "api", "sessions_ended": n}),
        (Ok(_), Err(e)) => json!({"via": "api", "sessions_not_ended": e}),
        (Err(e), _) => json!({"via": "api", "why": e.to_string()}),
    };
    let action = if changed.is_ok() { "account.password" } else { "account.password.refused" };
    audit(&s, &caller.0, action, "", details).await?;
    match changed {
        Ok(_) if ended.is_err() => {
            Err(ApiError::unavailable("the password changed, but other sessions could not be ended"))
        }
        Ok(_) => Ok(Json(json!({"changed": true, "sessions_ended": ended.unwrap_or_default()}))),
        Err(e @ (P::TooShort | P::Unchanged | P::Reused(_))) => Err(ApiError::bad_request(e.to_string())),
        Err(P::Wrong) => {
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "bad_password", "the current password is not right"))
        }
        Err(e @ P::Locked) => Err(ApiError::new(StatusCode::FORBIDDEN, "locked", e.to_string())),
        Err(e @ P::Disabled) => Err(ApiError::new(StatusCode::FORBIDDEN, "disabled", e.to_string())),
        Err(P::NoAccount(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no_account",
            "this token's holder has no account with a password",
        )),
        Err(P::Store(_)) => Err(ApiError::unavailable("cannot store the password")),
    }
}

/// How long a login waits for room on the raw topic for its sign-in event.
const SIGN_IN_EVENT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The address a request came from, when the server was started with it.
type Peer = axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>;

/// Checks `name`'s password (argon2, off the async threads) and reports the
/// attempt as a sign-in event.
async fn check_password(
    s: &AppState,
    accounts: &Arc<crate::accounts::AccountStore>,
    via: crate::sign_in::Via,
    name: &str,
    password: String,
    peer: Option<Peer>,
    now: i64,
) -> Result<Result<crate::accounts::Account, crate::accounts::PasswordError>, ApiError> {
    let checked = tokio::task::spawn_blocking({
        let (accounts, name) = (accounts.clone(), name.to_owned());
        move || accounts.check(&name, &password, now)
    })
    .await
    .map_err(|_| ApiError::unavailable("the password check stopped"))?;
    report_sign_in(s, accounts, via, name, peer, now, &checked).await;
    Ok(checked)
}

/// Puts a password check on the raw topic as a sign-in event, as any
/// authentication log's record would be (see [`crate::sign_in`]).
async fn report_sign_in(
    s: &AppState,
    accounts: &crate::accounts::AccountStore,
    via: crate::sign_in::Via,
    name: &str,
    peer: Option<Peer>,
    now: i64,
    checked: &Result<crate::accounts::Account, crate::accounts::PasswordError>,
) {
    let Some(outcome) = crate::sign_in::Outcome::of(accounts, name, now, checked) else { return };
    let from = peer.map(|p| p.0.0.ip().to_canonical());
    let record = crate::sign_in::record(via, outcome, name, from, now);
    // The audit record holds the attempt whatever becomes of the event.
    if let Err(dropped) = publish_sign_in_events(s, vec![record]).await {
        tracing::warn!(reason = %dropped, ?outcome, "a sign-in event was dropped; its audit record stands");
    }
}

/// Counts a request refused for its token, and reports it as a sign-in
/// event unless its key was reported less than a minute ago (see
/// [`crate::sign_in::TokenRefusals`]). Not an audit record: a client
/// retrying with a dead token would fill the ledger with them.
async fn report_refused_token(s: &AppState, key: crate::sign_in::TokenRefusalKey, now: i64) {
    let report = s.0.token_refusals.lock().unwrap_or_else(|e| e.into_inner()).refused(key, now);
    if let Some(report) = report {
        publish_token_reports(s, vec![report]).await;
    }
}

/// Every 10 s until `stop`, reports the refused tokens held back whose
/// minute has passed, so the tail of a burst is reported too.
pub async fn report_token_refusals_until(s: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = every.tick() => {}
        }
        let due = s.0.token_refusals.lock().unwrap_or_else(|e| e.into_inner()).due(now_millis());
        if !due.is_empty() {
            publish_token_reports(&s, due).await;
        }
    }
}

async fn publish_token_reports(s: &AppState, reports: Vec<crate::sign_in::TokenReport>) {
    let refused: u64 = reports.iter().map(|r| r.count).sum();
    let records = reports.iter().map(crate::sign_in::token_record).collect();
    if let Err(dropped) = publish_sign_in_events(s, records).await {
        tracing::warn!(reason = %dropped, refused, "a report of refused tokens was dropped");
    }
}

/// Puts sign-in events on the raw topic, waiting at most
/// [`SIGN_IN_EVENT_WAIT`]: a stalled ingest does not hold requests up for
/// long. A drop is counted (per record) and its reason returned.
async fn publish_sign_in_events(s: &AppState, records: Vec<RawRecord>) -> Result<(), String> {
    let n = records.len() as u64;
    let dropped = match tokio::time::timeout(SIGN_IN_EVENT_WAIT, s.0.raw.publish(records)).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no room on the raw topic within {SIGN_IN_EVENT_WAIT:?}"),
    };
    s.0.stats.sign_in_events_dropped.fetch_add(n, Ordering::Relaxed);
    Err(dropped)
}

/// `POST /api/v1/logout`: ends the session whose token the request
/// carries (audited). An API token is not a session: `custos user token`
/// replaces it and `custos user disable` ends it.
#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "accounts",
    summary = "End this session (audited)",
    responses((status = 200, description = "The session has ended", body = crate::schemas::LoggedOut), (status = 400, description = "The token is an API token, not a session", body = ErrorBody), (status = 401, description = "No or unknown token", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn logout(
    caller: Caller,
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let token = bearer(&headers)?;
    let ended =
        s.0.tokens
            .end_session(token, crate::auth::Ended::Logout)
            .map_err(|_| ApiError::unavailable("cannot store the tokens"))?;
    if !ended {
        return Err(ApiError::bad_request(
            "this is an API token, not a session: `custos user token` replaces it, `custos user disable` ends it",
        ));
    }
    audit(&s, &caller.0, "logout", "", json!({})).await?;
    Ok(Json(json!({"ended": true})))
}

/// `GET /api/v1/accounts`: who has access, for a periodic access review
/// (EU GMP Annex 11 §12, 21 CFR Part 11 §11.10(d)): every account with its
/// role, printed name, last login and whether it is disabled or locked, and every name
/// holding live tokens (collectors and services hold tokens without an
/// account). No password hash and no token leaves. Audited.
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "accounts",
    summary = "Accounts, roles and token holders, for an access review (audited)",
    responses((status = 200, description = "Accounts and token holders", body = crate::accounts::AccessReview), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_accounts(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Json<crate::accounts::AccessReview>, ApiError> {
    caller.require(Permission::ReviewAccess)?;
    let review = crate::accounts::AccessReview::at(s.0.accounts.as_deref(), &s.0.tokens, now_millis());
    let counts = json!({"accounts": review.accounts.len(), "token_holders": review.token_holders.len()});
    audit(&s, &caller.0, "accounts.read", "", counts).await?;
    Ok(Json(review))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RetentionRequest {
    /// event, deadletter, alert, incident, audit or signature.
    #[schema(pattern = "^(event|deadletter|alert|incident|audit|signature)$")]
    record_kind: String,
    #[schema(minimum = 1)]
    keep_days: u32,
    /// Why; not blank.
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LegalHoldRequest {
    #[serde(default)]
    asset: Option<String>,
    #[serde(default)]
    incident: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    from: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    to: Option<String>,
    /// Why; not blank.
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
}

/// Writes a retention or legal-hold record (who, printed name, time, why and
/// what) and shows it in the views.
async fn record_policy(s: &AppState, caller: &Caller, kind: ledger::RecordKind, what: Value) -> Result<u64, ApiError> {
    let now = now_millis();
    let mut data = json!({
        "set_by": caller.0.name,
        "printed_name": s.0.accounts.as_ref().and_then(|a| a.printed_name(&caller.0.name)),
        "time": format_rfc3339(now),
    });
    if let (Some(o), Value::Object(w)) = (data.as_object_mut(), what) {
        o.extend(w);
    }
    let rec = ledger::record::encode(kind, now, &data).map_err(|_| ApiError::unavailable("cannot record it"))?;
    let range = s.0.ledger.append(vec![rec]).await.map_err(|_| ApiError::unavailable("the ledger is not writable"))?;
    if let Some(o) = data.as_object_mut() {
        o.insert("index".into(), range.start.into());
    }
    s.0.views.retention.write().unwrap_or_else(|e| e.into_inner()).push(data);
    Ok(range.start)
}

#[utoipa::path(
    post,
    path = "/api/v1/ledger/retention",
    tag = "evidence",
    summary = "Record a retention policy",
    request_body = RetentionRequest,
    responses((status = 200, description = "The recorded policy", body = crate::schemas::Recorded), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn set_retention(caller: Caller, State(s): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::SetRetention)?;
    let r: RetentionRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    if !matches!(r.record_kind.as_str(), "event" | "deadletter" | "alert" | "incident" | "audit" | "signature") {
        return Err(ApiError::bad_request("record_kind is event, deadletter, alert, incident, audit or signature"));
    }
    if r.keep_days == 0 || r.reason.trim().is_empty() {
        return Err(ApiError::bad_request("keep_days (at least 1) and a reason are required"));
    }
    let what =
        json!({"policy": "retention", "record_kind": r.record_kind, "keep_days": r.keep_days, "reason": r.reason});
    let index = record_policy(&s, &caller, ledger::RecordKind::Retention, what).await?;
    Ok(Json(json!({"index": index})))
}

#[utoipa::path(
    post,
    path = "/api/v1/ledger/legal-holds",
    tag = "evidence",
    summary = "Record a legal hold",
    request_body = LegalHoldRequest,
    responses((status = 200, description = "The recorded hold", body = crate::schemas::Recorded), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn place_legal_hold(caller: Caller, State(s): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::PlaceLegalHold)?;
    let h: LegalHoldRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    if h.reason.trim().is_empty() {
        return Err(ApiError::bad_request("reason is required"));
    }
    for t in [&h.from, &h.to].into_iter().flatten() {
        parse_rfc3339(t).ok_or_else(|| ApiError::bad_request(format!("{t:?} is not RFC 3339")))?;
    }
    if h.asset.is_none() && h.incident.is_none() && h.from.is_none() {
        return Err(ApiError::bad_request("a hold names an asset, an incident or a time range"));
    }
    let what = json!({"policy": "legal_hold", "asset": h.asset, "incident": h.incident, "from": h.from, "to": h.to, "reason": h.reason});
    let index = record_policy(&s, &caller, ledger::RecordKind::LegalHold, what).await?;
    Ok(Json(json!({"index": index})))
}

/// Recorded retention policies and legal holds. Custos deletes nothing: any
/// future pruning may only remove what a policy allows and no hold covers.
#[utoipa::path(
    get,
    path = "/api/v1/ledger/retention",
    tag = "evidence",
    summary = "Retention policies and legal holds as recorded",
    responses((status = 200, description = "Policies and holds", body = Object), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_retention(caller: Caller, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadLedger)?;
    let all = s.0.views.retention.read().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Json(json!({"records": all, "deletion": "none: Custos never deletes ledger records"})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SignRequest {
    record_index: u64,
    /// reviewed, approved or responsible.
    #[schema(pattern = "^(reviewed|approved|responsible)$")]
    meaning: String,
    /// Why; not blank.
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
    /// Entered again for each signature (21 CFR Part 11 §11.200(a)).
    password: String,
}

/// An e-signature over a ledger record: the signer's password again, then a
/// `signature` record with the printed name, meaning, time, reason and the
/// signed record's index and SHA-256.
#[utoipa::path(
    post,
    path = "/api/v1/signatures",
    tag = "evidence",
    summary = "E-sign a ledger record (password re-entered)",
    request_body = SignRequest,
    responses((status = 200, description = "The signature record", body = crate::schemas::Signed), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn sign_record(
    caller: Caller,
    State(s): State<AppState>,
    peer: Option<Peer>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Sign)?;
    let req: SignRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    if !matches!(req.meaning.as_str(), "reviewed" | "approved" | "responsible") {
        return Err(ApiError::bad_request("meaning is reviewed, approved or responsible"));
    }
    if req.reason.trim().is_empty() {
        return Err(ApiError::bad_request("reason is required"));
    }
    let now = now_millis();
    let what = json!({"record_index": req.record_index, "meaning": req.meaning});
    let account = signer(&s, &caller.0, peer, req.password, now, &req.reason, what).await?;
    let signed =
        s.0.ledger
            .record(req.record_index)
            .map_err(|_| ApiError::not_found(format!("no record {}", req.record_index)))?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&signed));
    let over = json!({"record_index": req.record_index, "record_sha256": sha256});
    record_signature(&s, &account, &req.meaning, &req.reason, now, over).await
}

/// Ledgers `account`'s `signature` record (printed name, meaning, time and
/// reason) over what `over` names, a record or a review, and answers it.
async fn record_signature(
    s: &AppState,
    account: &crate::accounts::Account,
    meaning: &str,
    reason: &str,
    now: i64,
    over: Value,
) -> Result<Json<Value>, ApiError> {
    let mut data = json!({
        "signer": account.name, "printed_name": account.printed_name, "meaning": meaning,
        "time": format_rfc3339(now), "reason": reason,
    });
    if let (Some(data), Value::Object(over)) = (data.as_object_mut(), over) {
        data.extend(over);
    }
    let rec = ledger::record::encode(ledger::RecordKind::Signature, now, &data)
        .map_err(|_| ApiError::unavailable("cannot record the signature"))?;
    let range = s.0.ledger.append(vec![rec]).await.map_err(|_| ApiError::unavailable("the ledger is not writable"))?;
    Ok(Json(json!({"signature_index": range.start, "signature": data})))
}

/// The caller's signing account, once the password entered again checks
/// out; a refusal is an audit record (`signature.refused`, with `what`).
async fn signer(
    s: &AppState,
    who: &Principal,
    peer: Option<Peer>,
    password: String,
    now: i64,
    reason: &str,
    mut what: Value,
) -> Result<crate::accounts::Account, ApiError> {
    use crate::accounts::PasswordError as P;
    let accounts = s.0.accounts.clone().ok_or_else(|| ApiError::unavailable("e-signatures are not enabled"))?;
    let checked = check_password(s, &accounts, crate::sign_in::Via::Signature, &who.name, password, peer, now).await?;
    let refused = match checked {
        // A temporary password is known to the administrator who set it, and
        // an expired one is past its time: neither signs (21 CFR Part 11 §11.300).
        Ok(a) => match a.change_due(accounts.policy(), now) {
            None => return Ok(a),
            Some(due) => {
                let why = format!("the password is {}; its holder must choose a new one before signing", due.name());
                ApiError::new(StatusCode::FORBIDDEN, "password_change_required", why)
            }
        },
        Err(e @ P::Locked) => ApiError::new(StatusCode::FORBIDDEN, "locked", e.to_string()),
        Err(e @ P::Disabled) => ApiError::new(StatusCode::FORBIDDEN, "disabled", e.to_string()),
        Err(P::NoAccount(_)) => {
            ApiError::new(StatusCode::FORBIDDEN, "no_account", "this token's holder has no signing account")
        }
        Err(_) => ApiError::new(StatusCode::UNAUTHORIZED, "bad_password", "the password is not right"),
    };
    what["why"] = refused.message.clone().into();
    audit(s, who, "signature.refused", reason, what).await?;
    Err(refused)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AuditTrailReviewRequest {
    /// The first moment reviewed (RFC 3339).
    #[schema(format = DateTime)]
    from: String,
    /// The end of the review, not included (RFC 3339; not in the future).
    #[schema(format = DateTime)]
    to: String,
    /// Why; not blank.
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
    /// Entered again (21 CFR Part 11 §11.200(a)).
    password: String,
}

/// `POST /api/v1/audit-trail/reviews`: the caller e-signs that they
/// reviewed the audit trail of a period (EU GMP Annex 11 §9). The
/// `signature` record (meaning `reviewed`) names the period, how many
/// `audit` records it holds and their first and last index, and the
/// ledger's Merkle root at the record after the last, which binds every
/// record reviewed: a consistency proof ties it to any later checkpoint.
#[utoipa::path(
    post,
    path = "/api/v1/audit-trail/reviews",
    tag = "evidence",
    summary = "E-sign the review of a period's audit trail (password re-entered)",
    request_body = AuditTrailReviewRequest,
    responses((status = 200, description = "The signature record", body = crate::schemas::Signed), (status = 401, description = "No or unknown token, or the password is not right", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "No audit record was ledgered in the period", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn review_audit_trail(
    caller: Caller,
    State(s): State<AppState>,
    peer: Option<Peer>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Sign)?;
    let req: AuditTrailReviewRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let now = now_millis();
    let (from, to) = (rfc3339_param("from", &req.from)?, rfc3339_param("to", &req.to)?);
    if from >= to || to > now {
        return Err(ApiError::bad_request("a review covers from before to, and to is not in the future"));
    }
    if req.reason.trim().is_empty() {
        return Err(ApiError::bad_request("reason is required"));
    }
    let snap = s.0.ledger.snapshot().map_err(|_| ApiError::unavailable("the ledger cannot be read"))?;
    let span = crate::evidence::audit_span(&snap, from, to).map_err(|e| {
        tracing::error!(error = %e, "the audit trail could not be read for a review");
        ApiError::unavailable("the ledger cannot be read")
    })?;
    let span =
        span.ok_or_else(|| ApiError::not_found(format!("no audit record ledgered from {} to {}", req.from, req.to)))?;
    let what = json!({"review": {"from": req.from, "to": req.to}, "meaning": "reviewed"});
    let account = signer(&s, &caller.0, peer, req.password, now, &req.reason, what).await?;
    let root = s.0.ledger.root_at(span.last + 1).map_err(|_| ApiError::unavailable("the ledger cannot be read"))?;
    let over = json!({"review": {
        "what": "audit trail", "from": format_rfc3339(from), "to": format_rfc3339(to),
        "audit_records": span.records, "first_index": span.first, "last_index": span.last,
        "tree_size": span.last + 1, "root_hash": hex::encode(root),
    }});
    record_signature(&s, &account, "reviewed", &req.reason, now, over).await
}

/// `POST /api/v1/evidence/exports`: a bundle of the selected records with
/// their proofs (`application/x-tar`); the export is an `audit` record.
#[utoipa::path(
    post,
    path = "/api/v1/evidence/exports",
    tag = "evidence",
    summary = "An offline-verifiable evidence bundle (audited)",
    request_body = crate::evidence::Selection,
    responses((status = 200, description = "The bundle", body = String, content_type = "application/x-tar"), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "No signed record matches the selection (an unknown incident, a misspelt asset, an empty range)", body = ErrorBody), (status = 409, description = "No signed checkpoint yet; retry shortly", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn export_evidence(caller: Caller, State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    caller.require(Permission::ExportEvidence)?;
    let sel = serde_json::from_slice::<crate::evidence::Selection>(&body)
        .map_err(|e| ApiError::bad_request(format!("body: {e}")));
    let made = match &sel {
        Ok(sel) => make_export(&s, &caller.0.name, sel).await,
        Err(e) => Err(e.clone()),
    };
    // A refused export is an audit record too: an inspector asks who tried.
    let (export, turn) = match made {
        Ok(made) => made,
        Err(refused) => {
            let sel = sel.as_ref().ok();
            let mut details = sel.map_or_else(|| json!({}), crate::evidence::Selection::audit_details);
            details["refused"] = refused.message.clone().into();
            let reason = sel.and_then(|s| s.reason.as_deref()).unwrap_or_default();
            audit(&s, &caller.0, "evidence.export", reason, details).await?;
            return Err(refused);
        }
    };
    let sel = sel?;
    let details = export.audit_details(&sel);
    audit(&s, &caller.0, "evidence.export", sel.reason.as_deref().unwrap_or_default(), details).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"custos-evidence.tar\"".to_owned()),
            (header::CONTENT_LENGTH, export.len.to_string()),
            (header::HeaderName::from_static("x-custos-sha256"), export.sha256),
        ],
        file_body(export.file, turn),
    )
        .into_response())
}

/// Makes the bundle `sel` asks for in an unnamed file in the data directory,
/// once a turn and room for it are free.
async fn make_export(
    s: &AppState,
    by: &str,
    sel: &crate::evidence::Selection,
) -> Result<(crate::evidence::Export, tokio::sync::OwnedSemaphorePermit), ApiError> {
    let (signer, spool) =
        s.0.evidence.clone().ok_or_else(|| ApiError::unavailable("evidence export is not enabled"))?;
    let turn = take_turn(&s.0.turns.exports, s.0.turns.wait, "evidence exports").await?;
    // Where the room cannot be read (an unusual filesystem), the export goes ahead.
    let free = crate::room::available_bytes(&spool).unwrap_or_else(|e| {
        tracing::warn!(error = %e, dir = %spool.display(), "room in the data directory cannot be read");
        u64::MAX
    });
    if free < s.0.turns.export_room {
        tracing::warn!(
            free,
            needed = s.0.turns.export_room,
            "evidence export refused: the data directory is nearly full"
        );
        return Err(ApiError::unavailable(format!(
            "the data directory has {} MB free; an export starts only with {} MB free, so a bundle never takes the room the ledger needs",
            free >> 20,
            s.0.turns.export_room >> 20
        )));
    }
    let ledger = s.0.ledger.clone();
    let (sel, by) = (sel.clone(), by.to_owned());
    let export = tokio::task::spawn_blocking(move || {
        let file = tempfile::tempfile_in(&spool).map_err(|e| {
            crate::evidence::ExportError::Write(ledger::LedgerError::Io {
                path: spool.clone(),
                what: "make a file for an evidence bundle in".into(),
                source: e,
            })
        })?;
        let snap = ledger.snapshot()?;
        let in_force = crate::in_force::history(&spool, &snap)?;
        crate::evidence::export(&snap, &sel, &by, &signer, file, &in_force.records)
    })
    .await
    .map_err(|_| ApiError::unavailable("the export stopped"))?
    .map_err(|e| match e {
        crate::evidence::ExportError::Selection(m) => ApiError::bad_request(m),
        crate::evidence::ExportError::NoRecords(m) => ApiError::not_found(m),
        crate::evidence::ExportError::NotSigned(m) => ApiError::new(StatusCode::CONFLICT, "not_yet_signed", m),
        crate::evidence::ExportError::Ledger(e) => {
            tracing::error!(error = %e, "evidence export failed");
            ApiError::unavailable("the ledger cannot be read for an export now")
        }
        crate::evidence::ExportError::Write(e) => {
            tracing::error!(error = %e, "evidence export failed");
            ApiError::unavailable("the bundle cannot be written in the data directory now (is its disk full?)")
        }
    })?;
    Ok((export, turn))
}

/// How long a bundle may take to send before its turn passes to the next
/// export (at 342 MB, 0.6 MB/s): a client that stops reading cannot hold it.
const BUNDLE_SEND_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// A response body read from `file` as it is sent. The export's `turn` is
/// held until the whole file is sent or the client goes away (or for
/// [`BUNDLE_SEND_LIMIT`] at most): the unsent bundle takes room in the data
/// directory, which the ledger needs, so turns bound that room too.
fn file_body(file: std::fs::File, turn: tokio::sync::OwnedSemaphorePermit) -> axum::body::Body {
    use tokio::io::AsyncReadExt;
    // The sender is dropped with the body, whether sent, failed or cut off.
    let (sending, sent) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _turn = turn;
        let _ = tokio::time::timeout(BUNDLE_SEND_LIMIT, sent).await;
    });
    let state = (tokio::fs::File::from_std(file), sending);
    let chunks = futures_util::stream::try_unfold(state, |(mut file, sending)| async move {
        let mut chunk = vec![0u8; 256 << 10];
        let n = file.read(&mut chunk).await?;
        chunk.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (Bytes::from(chunk), (file, sending))))
    });
    axum::body::Body::from_stream(chunks)
}

/// A ledger record with its inclusion proof against the latest signed
/// checkpoint, so the caller can check it without trusting this server.
#[utoipa::path(
    get,
    path = "/api/v1/ledger/records/{index}",
    tag = "ledger",
    summary = "A ledger record with its inclusion proof (audited)",
    params(("index" = u64, Path, description = "Ledger index")),
    responses((status = 200, description = "Record and proof", body = crate::schemas::RecordProof), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Not yet covered by a signed checkpoint", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn ledger_record(
    caller: Caller,
    State(s): State<AppState>,
    Path(index): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadLedger)?;
    let index: u64 = index.parse().map_err(|_| ApiError::bad_request(format!("index {index:?} is not a number")))?;
    let (note, size) = signed_checkpoint(&s)?;
    let held = s.0.ledger.size();
    if index >= held {
        return Err(ApiError::not_found(format!("no record {index}: the ledger holds {held} records, from index 0")));
    }
    if index >= size {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_yet_signed",
            format!("record {index} is not covered by the latest signed checkpoint (size {size}) yet; retry shortly"),
        ));
    }
    let bytes = s.0.ledger.record(index).map_err(|_| ApiError::unavailable("the record cannot be read"))?;
    let proof = s.0.ledger.inclusion_proof(index, size).map_err(|_| ApiError::unavailable("no proof"))?;
    // Who looked at which evidence is evidence too.
    audit(&s, &caller.0, "evidence.read", "", json!({"record_index": index})).await?;
    let record: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Json(json!({
        "index": index,
        "record": record,
        // The exact bytes the leaf hash covers (records are canonical JSON, UTF-8).
        "record_text": String::from_utf8_lossy(&bytes),
        "leaf_hash": hex::encode(ledger::merkle::leaf_hash(&bytes)),
        "tree_size": size,
        "inclusion_proof": hexes(&proof),
        "checkpoint": note,
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    #[param(minimum = 1)]
    old: u64,
    new: Option<u64>,
}

/// RFC 9162 consistency proof between two tree sizes (`new` defaults to the
/// latest signed checkpoint's size).
#[utoipa::path(
    get,
    path = "/api/v1/ledger/proof/consistency",
    tag = "ledger",
    summary = "RFC 9162 consistency proof between two tree sizes",
    params(ConsistencyQuery),
    responses((status = 200, description = "Proof", body = crate::schemas::ConsistencyProof), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 409, description = "No signed checkpoint yet; retry shortly", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn consistency_proof(
    caller: Caller,
    State(s): State<AppState>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadLedger)?;
    let q = q?.0;
    let (note, size) = signed_checkpoint(&s)?;
    let new = q.new.unwrap_or(size);
    if q.old == 0 || q.old > new || new > s.0.ledger.size() {
        return Err(ApiError::bad_request(format!(
            "need 0 < old <= new <= {} (old {}, new {new})",
            s.0.ledger.size(),
            q.old
        )));
    }
    let proof = s.0.ledger.consistency_proof(q.old, new).map_err(|_| ApiError::unavailable("no proof"))?;
    Ok(Json(json!({"old": q.old, "new": new, "proof": hexes(&proof), "checkpoint": note})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InForceQuery {
    /// A ledger time (RFC 3339); now when neither this nor `record` is given.
    #[param(format = DateTime)]
    at: Option<String>,
    /// What was in force when this ledger record was (an alert's, say).
    record: Option<u64>,
    /// Also each file's text as its record holds it (default false).
    text: Option<bool>,
}

/// The inventory, each rule file and the configuration in force at a time,
/// each by SHA-256 with the ledger record that states it (its text is
/// there, with an inclusion proof, at `GET /ledger/records/{index}`), and
/// the changes up to then, newest first (at most 100, with the total).
#[utoipa::path(
    get,
    path = "/api/v1/in-force",
    tag = "ledger",
    summary = "What inventory, rules and configuration were in force at a time (audited)",
    params(InForceQuery),
    responses((status = 200, description = "What was in force", body = Object), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn in_force(
    caller: Caller,
    State(s): State<AppState>,
    q: Result<Query<InForceQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadLedger)?;
    let q = q?.0;
    let texts = q.text.unwrap_or(false);
    let when = match (q.at, q.record) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give at or record, not both")),
        (None, Some(record)) => crate::in_force::When::Record(record),
        (None, None) => crate::in_force::When::At(now_millis()),
        (Some(t), None) => crate::in_force::When::At(
            parse_rfc3339(&t).ok_or_else(|| ApiError::bad_request(format!("at: {t:?} is not an RFC 3339 time")))?,
        ),
    };
    let data_dir =
        s.0.evidence
            .as_ref()
            .map(|(_, dir)| dir.clone())
            .ok_or_else(|| ApiError::unavailable("evidence is not enabled"))?;
    let ledger = s.0.ledger.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let snap = ledger.snapshot()?;
        let history = crate::in_force::history(&data_dir, &snap)?;
        crate::in_force::at_time(&snap, &history.records, when, texts)
    })
    .await
    .map_err(|_| ApiError::unavailable("the ledger read stopped"))?
    .map_err(|e| {
        tracing::error!(error = %e, "what was in force cannot be read");
        ApiError::unavailable("the ledger cannot be read now")
    })?;
    audit(&s, &caller.0, "in_force.read", "", when.to_json()).await?;
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "incidents",
    summary = "Recent alerts, newest first",
    params(LimitQuery),
    responses((status = 200, description = "Alerts", body = crate::schemas::Alerts), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_alerts(
    caller: Caller,
    State(s): State<AppState>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadIncidents)?;
    let n = limit(q?.0.limit)?;
    let list: Vec<Value> = s.0.views.alerts(n).iter().map(indexed_json).collect();
    Ok(Json(json!({"alerts": list})))
}

/// The built-in rule whose alerts say someone logged on inside a zone with
/// no badge into it: they are inside, badge or not.
const LOGON_WITHOUT_BADGE: &str = "custos-logon-without-badge-in";

/// How long a presence request waits for the engine's answer.
/// How far ahead of this server's clock a presence question may ask.
const ON_SITE_CLOCK_SKEW_MS: i64 = 60_000;
const ON_SITE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct OnSiteQuery {
    /// Only those in this zone.
    zone: Option<String>,
    /// Only those in this area.
    area: Option<String>,
    /// Only this person.
    person: Option<String>,
    /// As of this past time (RFC 3339), within the presence timeout: who was
    /// inside when an alarm went off. Default: now.
    at: Option<String>,
    /// Why they are looked up (kept in the audit record).
    reason: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/presence",
    tag = "events",
    summary = "Who is on site now, and where, by their badges",
    description = "Each person whose last badge event put them in a zone or area (not an exit), within the presence timeout (`[correlate] presence_lookback_ms`), with the badge event's time and ledger index: a muster list, or who is in the control room. Beside them, `seen_without_badge`: people a logon put inside a zone with no badge of theirs (the `custos-logon-without-badge-in` alerts within the presence timeout), who must be counted too; and `unidentified_entries`: entries into a place no badge names (a tailgate the access control system detected, a door forced open, not at an exit) within the presence timeout, each someone who may be inside unnamed. Every call is an audit record (`presence.read`).",
    params(OnSiteQuery),
    responses((status = 200, description = "People on site (JSON), or with `Accept: text/csv` the muster list as CSV: status, person, name, employer, vendor, zone, area, since, ledger_index, door, how", content((Object = "application/json"), (String = "text/csv"))), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 422, description = "`at` is older than presence is kept for (`too_old`)", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn on_site(
    caller: Caller,
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    q: Result<Query<OnSiteQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    use crate::on_site::{Mustered, muster_csv, who};
    caller.require(Permission::ReadPresence)?;
    let Query(q) = q?;
    let csv = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    let asks = s.0.on_site.as_ref().ok_or_else(|| ApiError::unavailable("presence is not kept in this process"))?;
    let now = now_millis();
    let at = time_param("at", q.at.as_deref())?.unwrap_or(now);
    if at > now + ON_SITE_CLOCK_SKEW_MS {
        return Err(ApiError::bad_request("at: a time in the future"));
    }
    // The engine answers between ledger batches; a stage stuck on its disk
    // must not hold the request.
    let answer = tokio::time::timeout(ON_SITE_WAIT, asks.at(at))
        .await
        .map_err(|_| ApiError::unavailable("correlation is busy; try again"))?
        .ok_or_else(|| ApiError::unavailable("correlation has stopped"))?;
    // Badges are kept for twice the timeout: a time within one timeout
    // still has every badge-in that counts for it.
    if now - at > answer.timeout_ms {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_old",
            format!(
                "at: presence is kept for the last {} minutes ([correlate] presence_lookback_ms); for an earlier time, query the archive's badge events (POST /api/v1/query/sql)",
                answer.timeout_ms / 60_000
            ),
        ));
    }
    let is = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let badged: std::collections::HashSet<&str> = answer.people.iter().map(|o| o.person.as_str()).collect();
    let mut mustered: Vec<Mustered<'_>> = answer
        .people
        .iter()
        .filter(|o| is(&q.zone, o.place.zone.as_deref()) && is(&q.area, o.place.area.as_deref()))
        .filter(|o| is(&q.person, Some(&o.person)))
        .map(|o| Mustered {
            status: "on_site",
            person: &o.person,
            door: None,
            zone: o.place.zone.as_deref(),
            area: o.place.area.as_deref(),
            since: o.since,
            ledger_index: o.index,
        })
        .collect();
    let found = mustered.len();
    // Those a logon put inside a zone with no badge of theirs (a muster must
    // count them too), newest alert first, each person once; no area is
    // known for them.
    let alerts = s.0.views.alerts(usize::MAX);
    let mut seen = std::collections::HashSet::new();
    let logons: Vec<_> = alerts
        .iter()
        .filter(|a| a.item.rule == LOGON_WITHOUT_BADGE && a.item.entity.kind == correlate::EntityKind::Person)
        .filter(|a| a.item.time <= at && at - a.item.time <= answer.timeout_ms)
        .filter(|a| !badged.contains(a.item.entity.id.as_str()))
        .filter(|a| q.area.is_none() && is(&q.zone, a.item.zone.as_deref()) && is(&q.person, Some(&a.item.entity.id)))
        .filter(|a| seen.insert(a.item.entity.id.as_str()))
        .collect();
    mustered.extend(logons.iter().map(|a| Mustered {
        status: "seen_without_badge",
        person: &a.item.entity.id,
        door: None,
        zone: a.item.zone.as_deref(),
        area: None,
        since: a.item.time,
        ledger_index: a.index,
    }));
    // Entries no badge names (tailgates, forced doors): someone may be
    // inside whom no list names. Not when one person is asked for.
    let unnamed: Vec<_> = answer
        .unidentified
        .iter()
        .filter(|u| q.person.is_none() && is(&q.zone, u.place.zone.as_deref()) && is(&q.area, u.place.area.as_deref()))
        .collect();
    mustered.extend(unnamed.iter().map(|u| Mustered {
        status: "unidentified_entry",
        person: "",
        door: Some((&u.door, u.how.as_str())),
        zone: u.place.zone.as_deref(),
        area: u.place.area.as_deref(),
        since: u.time,
        ledger_index: u.index,
    }));
    let asked = json!({"zone": q.zone, "area": q.area, "person": q.person, "at": format_rfc3339(at), "found": found,
                       "seen_without_badge": logons.len(), "unidentified_entries": unnamed.len(),
                       "format": if csv { "csv" } else { "json" }});
    audit(&s, &caller.0, "presence.read", q.reason.as_deref().unwrap_or(""), asked).await?;
    if csv {
        let name = format!("attachment; filename=\"custos-muster-{}.csv\"", format_rfc3339(at).replace(':', ""));
        let headers =
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, name)];
        return Ok((headers, muster_csv(&mustered, &answer.inventory)).into_response());
    }
    let person = |m: &Mustered<'_>| {
        let (name, employer, vendor) = who(&answer.inventory, m.person);
        json!({"person": m.person, "name": name, "employer": employer, "vendor": vendor, "zone": m.zone})
    };
    let (people, rest) = mustered.split_at(found);
    let (unbadged, unnamed) = rest.split_at(logons.len());
    let people: Vec<Value> = people
        .iter()
        .map(|m| {
            let mut o = person(m);
            o["area"] = json!(m.area);
            o["since"] = json!(format_rfc3339(m.since));
            o["ledger_index"] = json!(m.ledger_index);
            o
        })
        .collect();
    let unbadged: Vec<Value> = unbadged
        .iter()
        .zip(&logons)
        .map(|(m, a)| {
            let mut o = person(m);
            o["seen_at"] = json!(format_rfc3339(m.since));
            o["alert"] = json!(a.item.id);
            o["ledger_index"] = json!(m.ledger_index);
            o
        })
        .collect();
    let unnamed: Vec<Value> = unnamed
        .iter()
        .map(|m| {
            let (door, how) = m.door.unwrap_or_default();
            json!({"door": door, "how": how, "zone": m.zone, "area": m.area, "at": format_rfc3339(m.since),
                   "ledger_index": m.ledger_index})
        })
        .collect();
    Ok(Json(json!({"at": format_rfc3339(at), "on_site": people, "seen_without_badge": unbadged,
                   "unidentified_entries": unnamed}))
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/dead-letters",
    tag = "events",
    summary = "Recent dead letters with reasons and raw bytes",
    params(LimitQuery),
    responses((status = 200, description = "Dead letters", body = crate::schemas::DeadLetters), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_dead_letters(
    caller: Caller,
    State(s): State<AppState>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::ReadEvents)?;
    let n = limit(q?.0.limit)?;
    let list: Vec<Value> = s.0.views.dead_letters(n).iter().map(indexed_json).collect();
    Ok(Json(json!({"dead_letters": list, "total": s.0.stats.dead_letters.load(Ordering::Relaxed)})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CollectorsQuery {
    /// Only collectors in this state now.
    #[param(pattern = "^(running|stopped|silent)$")]
    state: Option<String>,
}

/// Is every feed alive: what this process reads itself (`local`: the
/// embedded default, or a core with sources of its own) and each collector
/// the core has heard from on the status topic, from its newest heartbeat —
/// its `state` now (`silent` after two of its intervals plus 30 s, two
/// minutes at the least, as `CustosCollectorSilent` says), when it was
/// sent (its clock) and heard (the core's), its clock's offset (and since
/// when the core has read it more than 10 s off), and what each of its
/// sources read.
#[utoipa::path(
    get,
    path = "/api/v1/collectors",
    tag = "events",
    summary = "The collectors' and this process's sources: state, clocks and counts",
    params(CollectorsQuery),
    responses((status = 200, description = "Collectors", body = crate::feeds::FeedsAnswer), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_collectors(
    caller: Caller,
    State(s): State<AppState>,
    q: Result<Query<CollectorsQuery>, QueryRejection>,
) -> Result<Json<crate::feeds::FeedsAnswer>, ApiError> {
    use crate::metrics::CollectorState;
    caller.require(Permission::ReadEvents)?;
    let wanted = match q?.0.state.as_deref() {
        None => None,
        Some("running") => Some(CollectorState::Running),
        Some("stopped") => Some(CollectorState::Stopped),
        Some("silent") => Some(CollectorState::Silent),
        Some(other) => {
            return Err(ApiError::bad_request(format!("state: running, stopped or silent, not {other:?}")));
        }
    };
    Ok(Json(crate::feeds::answer(&s.0.stats, now_millis(), wanted)))
}

#[utoipa::path(
    get,
    path = "/api/v1/ledger/checkpoint",
    tag = "ledger",
    summary = "The latest signed checkpoint (C2SP signed note)",
    responses((status = 200, description = "Signed note", body = String, content_type = "text/plain"), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 409, description = "No signed checkpoint yet; retry shortly", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn checkpoint(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    caller.require(Permission::ReadLedger)?;
    let note = s.0.ledger.latest_checkpoint().ok_or_else(not_yet_signed)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TransitionRequest {
    /// acknowledged, investigating, closed or false_positive.
    #[schema(pattern = "^(acknowledged|investigating|closed|false_positive)$")]
    to: String,
    /// Why; not blank.
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
}

/// Moves an incident on (reason required); the new state is an `incident`
/// record and the action an `audit` record, both in the ledger before the
/// answer.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/transition",
    tag = "incidents",
    summary = "Move an incident on (reason required; audited)",
    params(("id" = String, Path, description = "Incident id")),
    request_body = TransitionRequest,
    responses((status = 200, description = "The incident after the move", body = crate::schemas::IncidentChanged), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "The state machine forbids this move", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn transition_incident(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::HandleIncidents)?;
    let req: TransitionRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let to = correlate::IncidentState::from_name(&req.to).ok_or_else(|| {
        ApiError::bad_request(format!("to {:?} is not acknowledged, investigating, closed or false_positive", req.to))
    })?;
    let now = now_millis();
    change_incident(&s, &caller.0, now, |book| {
        let from = book.get(&id).map(|i| i.state).ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
        let inc = book.transition(&id, to, &caller.0.name, &req.reason, now).map_err(|e| match e {
            correlate::CorrelateError::ReasonRequired => ApiError::bad_request("reason is required"),
            other => ApiError::new(StatusCode::CONFLICT, "bad_transition", other.to_string()),
        })?;
        let details = json!({"incident": id, "from": from.as_str(), "to": to.as_str()});
        Ok((inc, IncidentChange { action: "incident.transition", reason: req.reason.clone(), details }))
    })
    .await
}

/// What a person did to an incident, for its `audit` record.
struct IncidentChange {
    action: &'static str,
    reason: String,
    details: Value,
}

/// Changes one incident in the book with `change`, then ledgers its new
/// version and the `audit` record of the change, both before the answer.
/// Versions are submitted in the order they were made (see
/// [`Views::incident_turn`]).
async fn change_incident(
    s: &AppState,
    who: &Principal,
    now: i64,
    change: impl FnOnce(&mut correlate::IncidentBook) -> Result<(correlate::Incident, IncidentChange), ApiError>,
) -> Result<Json<Value>, ApiError> {
    let turn = s.0.views.incident_turn().await;
    let (inc, what) = change(&mut turn.book())?;
    let records = [
        ledger::record::encode(ledger::RecordKind::Incident, now, &inc),
        crate::audit::encode(&crate::audit::Entry {
            actor: &who.name,
            printed_name: s.0.accounts.as_ref().and_then(|a| a.printed_name(&who.name)).as_deref(),
            role: Some(who.role),
            action: what.action,
            reason: &what.reason,
            details: what.details,
        }),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(|_| ApiError::unavailable("cannot record the change"))?;
    let not_writable = |_| ApiError::unavailable("the ledger is not writable");
    let submitted = turn.submit(&s.0.ledger, records).await.map_err(not_writable)?;
    let range = submitted.durable().await.map_err(not_writable)?;
    let answer = json!({"incident": incident_json(&inc), "audit_index": range.start + 1});
    s.0.views.show_incidents([(range.start, inc)]);
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NoteRequest {
    /// What was found or done; 1 to 4,000 characters, not blank.
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    text: String,
}

/// Adds the caller's note to an incident (findings, calls, hand-overs),
/// open or closed: a new `incident` version holding every note, and an
/// `audit` record, both in the ledger before the answer.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/notes",
    tag = "incidents",
    summary = "Add a note to an incident (audited)",
    params(("id" = String, Path, description = "Incident id")),
    request_body = NoteRequest,
    responses((status = 200, description = "The incident with the note", body = crate::schemas::IncidentChanged), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "The incident holds 200 notes already", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn add_incident_note(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::HandleIncidents)?;
    let req: NoteRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let text = req.text.trim();
    if text.is_empty() || text.chars().count() > correlate::MAX_NOTE_CHARS {
        return Err(ApiError::bad_request(format!("text has 1 to {} characters", correlate::MAX_NOTE_CHARS)));
    }
    let now = now_millis();
    change_incident(&s, &caller.0, now, |book| {
        let inc = book.add_note(&id, &caller.0.name, text, now).map_err(|e| match e {
            correlate::CorrelateError::NoSuchIncident(_) => ApiError::not_found(format!("no incident {id}")),
            other => ApiError::new(StatusCode::CONFLICT, "too_many_notes", other.to_string()),
        })?;
        let details = json!({"incident": id, "note": inc.notes.len(), "chars": text.chars().count()});
        Ok((inc, IncidentChange { action: "incident.note", reason: String::new(), details }))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignRequest {
    /// The account to work on it (one whose role handles incidents); null:
    /// no one.
    assignee: Option<String>,
    /// Why, if there is more to say than who.
    #[serde(default)]
    reason: String,
}

/// Gives an open incident to a person (or to no one): a new `incident`
/// version and an `audit` record with who had it before.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/assign",
    tag = "incidents",
    summary = "Give an open incident to a person (audited)",
    params(("id" = String, Path, description = "Incident id")),
    request_body = AssignRequest,
    responses((status = 200, description = "The incident with its assignee", body = crate::schemas::IncidentChanged), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input, or no enabled account of that name whose role handles incidents", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "The incident is closed or a false positive", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn assign_incident(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::HandleIncidents)?;
    let req: AssignRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    if let Some(name) = &req.assignee {
        let accounts = s.0.accounts.as_ref().ok_or_else(|| ApiError::unavailable("accounts are not enabled"))?;
        let handles =
            accounts.get(name).is_some_and(|a| !a.is_disabled() && permits(a.role, Permission::HandleIncidents));
        if !handles {
            return Err(ApiError::bad_request(format!("no enabled account {name:?} whose role handles incidents")));
        }
    }
    let now = now_millis();
    change_incident(&s, &caller.0, now, |book| {
        let (was, inc) = book.assign(&id, req.assignee.as_deref()).map_err(|e| match e {
            correlate::CorrelateError::NoSuchIncident(_) => ApiError::not_found(format!("no incident {id}")),
            other => ApiError::new(StatusCode::CONFLICT, "incident_final", other.to_string()),
        })?;
        let details = json!({"incident": id, "from": was, "to": req.assignee});
        Ok((inc, IncidentChange { action: "incident.assign", reason: req.reason.clone(), details }))
    })
    .await
}

/// Reloads the rules; a set with errors is refused (422) with every message,
/// and the running rules stay.
#[utoipa::path(
    post,
    path = "/api/v1/rules/reload",
    tag = "rules",
    summary = "Reload the correlation rules (refused sets keep the old ones)",
    responses((status = 200, description = "Rules loaded: how many run, and whether the files changed", body = crate::schemas::Reloaded), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 422, description = "The rule set was refused", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn reload_rules(caller: Caller, State(s): State<AppState>) -> Result<Json<crate::reload::Reloaded>, ApiError> {
    caller.require(Permission::ManageRules)?;
    reload_answer(s.0.reload.rules(&caller.0.name).await, "bad_rules")
}

/// A reload's answer: what runs now, 422 `refused_code` with every message,
/// or 503 when correlation has stopped.
fn reload_answer(
    result: Result<crate::reload::Reloaded, ReloadError>,
    refused_code: &'static str,
) -> Result<Json<crate::reload::Reloaded>, ApiError> {
    match result {
        Ok(reloaded) => Ok(Json(reloaded)),
        Err(ReloadError::Refused(errors)) => {
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, refused_code, errors.join("\n")))
        }
        Err(ReloadError::NotRunning) => Err(ApiError::unavailable("correlation is not running")),
    }
}

/// Reloads the plant inventory (a change ticket opened, a person added):
/// enrichment and correlation use it from the next record on. An inventory
/// that does not load, or against which the running rules do not compile,
/// is refused (422) with every message, and the running one stays.
#[utoipa::path(
    post,
    path = "/api/v1/inventory/reload",
    tag = "rules",
    summary = "Reload the plant inventory (audited with its new text; refused ones keep the old)",
    responses((status = 200, description = "Inventory loaded: the rules compiled against it, and whether it changed", body = crate::schemas::Reloaded), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 422, description = "The inventory was refused", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn reload_inventory(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Json<crate::reload::Reloaded>, ApiError> {
    caller.require(Permission::ManageInventory)?;
    reload_answer(s.0.reload.inventory(&caller.0.name).await, "bad_inventory")
}

/// The alarm board: highest priority first.
#[utoipa::path(
    get,
    path = "/api/v1/alarms",
    tag = "alarms",
    summary = "Standing control-room alarms",
    responses((status = 200, description = "Alarms", body = crate::schemas::Alarms), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn list_alarms(caller: Caller, State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::HandleAlarms)?;
    let board = s.0.views.alarms.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Json(json!({"alarms": board.list()})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AcknowledgeRequest {
    key: String,
    /// Why (optional for an acknowledgement).
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ShelveRequest {
    key: String,
    /// Why; not blank (shelving hides an alarm from the operator).
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
    /// For how long: 1 to 1440 minutes.
    #[schema(minimum = 1, maximum = 1440)]
    minutes: u32,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UnshelveRequest {
    key: String,
    /// Why it returns to service early; not blank.
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("body: {e}")))
}

/// Ledgers a person's action as an `audit` record: who, what, when, why.
async fn audit(s: &AppState, who: &Principal, action: &str, reason: &str, details: Value) -> Result<u64, ApiError> {
    let printed = s.0.accounts.as_ref().and_then(|a| a.printed_name(&who.name));
    let entry = crate::audit::Entry {
        actor: &who.name,
        printed_name: printed.as_deref(),
        role: Some(who.role),
        action,
        reason,
        details,
    };
    let rec = crate::audit::encode(&entry).map_err(|_| ApiError::unavailable("cannot record the action"))?;
    let range = s.0.ledger.append(vec![rec]).await.map_err(|_| ApiError::unavailable("the ledger is not writable"))?;
    Ok(range.start)
}

#[utoipa::path(
    post,
    path = "/api/v1/alarms/acknowledge",
    tag = "alarms",
    summary = "Acknowledge an alarm (audited)",
    request_body = AcknowledgeRequest,
    responses((status = 200, description = "The alarm", body = crate::schemas::AlarmHandled), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn acknowledge_alarm(caller: Caller, State(s): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::HandleAlarms)?;
    let a: AcknowledgeRequest = json_body(&body)?;
    let at = now_millis();
    let state = {
        let mut board = s.0.views.alarms.lock().unwrap_or_else(|e| e.into_inner());
        let st = board.acknowledge(&a.key, &caller.0.name, at).map_err(|e| ApiError::not_found(e.to_string()))?;
        serde_json::to_value(st).unwrap_or_default()
    };
    // The board's time goes into the record, so a restart rebuilds it exactly.
    let details = json!({"key": a.key, "acknowledged_at": at});
    let index = audit(&s, &caller.0, "alarm.acknowledge", &a.reason, details).await?;
    Ok(Json(json!({"alarm": state, "audit_index": index})))
}

#[utoipa::path(
    post,
    path = "/api/v1/alarms/shelve",
    tag = "alarms",
    summary = "Shelve an alarm for 1 to 1440 minutes (audited)",
    request_body = ShelveRequest,
    responses((status = 200, description = "The alarm", body = crate::schemas::AlarmHandled), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn shelve_alarm(caller: Caller, State(s): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::HandleAlarms)?;
    let a: ShelveRequest = json_body(&body)?;
    if !(1..=1440).contains(&a.minutes) {
        return Err(ApiError::bad_request("shelving expires after 1 to 1440 minutes"));
    }
    let until = now_millis() + i64::from(a.minutes) * 60_000;
    let state = {
        let mut board = s.0.views.alarms.lock().unwrap_or_else(|e| e.into_inner());
        let st = board.shelve(&a.key, until, &caller.0.name, &a.reason).map_err(|e| match e {
            correlate::CorrelateError::ReasonRequired => ApiError::bad_request("reason is required to shelve an alarm"),
            other => ApiError::not_found(other.to_string()),
        })?;
        serde_json::to_value(st).unwrap_or_default()
    };
    let index = audit(&s, &caller.0, "alarm.shelve", &a.reason, json!({"key": a.key, "until": until})).await?;
    Ok(Json(json!({"alarm": state, "audit_index": index})))
}

#[utoipa::path(
    post,
    path = "/api/v1/alarms/unshelve",
    tag = "alarms",
    summary = "Return a shelved alarm to service before its shelf expires (audited)",
    request_body = UnshelveRequest,
    responses((status = 200, description = "The alarm, and the shelf ended", body = crate::schemas::AlarmHandled), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "Not on the board", body = ErrorBody), (status = 409, description = "Not shelved (`not_shelved`), or its shelf has run out", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn unshelve_alarm(caller: Caller, State(s): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::HandleAlarms)?;
    let a: UnshelveRequest = json_body(&body)?;
    let at = now_millis();
    let (state, shelf) = {
        let mut board = s.0.views.alarms.lock().unwrap_or_else(|e| e.into_inner());
        let (st, shelf) = board.unshelve(&a.key, &a.reason, at).map_err(|e| match e {
            correlate::CorrelateError::ReasonRequired => {
                ApiError::bad_request("reason is required to unshelve an alarm")
            }
            correlate::CorrelateError::NotShelved(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_shelved", e.to_string())
            }
            other => ApiError::not_found(other.to_string()),
        })?;
        (serde_json::to_value(st).unwrap_or_default(), shelf)
    };
    // The time goes into the record, so a restart rebuilds the board exactly.
    let details = json!({"key": a.key, "unshelved_at": at, "shelf": &shelf});
    let index = audit(&s, &caller.0, "alarm.unshelve", &a.reason, details).await?;
    Ok(Json(json!({"alarm": state, "shelf": shelf, "audit_index": index})))
}

/// Prometheus metrics; scrapers send a bearer token like any client.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain"), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn metrics(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    caller.require(Permission::ReadMetrics)?;
    let now = now_millis();
    let age =
        s.0.ledger
            .latest_checkpoint()
            .and_then(|n| ledger::Checkpoint::of_note(&n).ok().map(|c| (now - c.time_ms) as f64 / 1000.0));
    let st = &s.0.stats;
    let alarms = {
        let board = s.0.views.alarms.lock().unwrap_or_else(|e| e.into_inner());
        crate::metrics::render_alarms(&st.alarms_raised, &board.list(), now)
    };
    // One copy of the collectors' heartbeats (up to 256 of 2,048 rows) per scrape.
    let collectors = st.collectors.list();
    let text = crate::metrics::render(
        &st.ingest,
        &collectors,
        &st.udp_drops.0,
        &st.bus_redelivered,
        &st.alerts,
        &st.alarm_failures,
        &st.late_events,
        s.0.ledger.size(),
        age,
    ) + &st.ledgered.render()
        + &alarms
        + &st.http.render()
        + &st.source_restarts.render(&collectors)
        + &crate::metrics::render_state(s.0.ledger.size(), st.state_snapshot_records.load(Ordering::Relaxed))
        + &crate::metrics::render_sign_ins(
            st.sign_in_events_dropped.load(Ordering::Relaxed),
            s.0.token_refusals.lock().unwrap_or_else(|e| e.into_inner()).totals(),
        )
        + &crate::metrics::render_token_expiry(&s.0.tokens.api_token_expiries(now), now)
        + &crate::metrics::render_room(
            s.0.evidence.as_ref().and_then(|(_, data_dir)| crate::room::available_bytes(data_dir).ok()),
        );
    let text = match &s.0.search {
        Some((_, views)) => {
            let (searchable, archived) =
                (views.searchable.load(Ordering::Relaxed), views.archived.load(Ordering::Relaxed));
            text + &crate::metrics::render_views(s.0.ledger.size(), searchable, archived)
        }
        None => text,
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// `POST /api/v1/ingest/{source}`: a JSON object, a JSON array of objects, or
/// JSON lines. Each record keeps its exact bytes; what does not parse becomes
/// a dead letter downstream, so nothing sent is lost. 202 = accepted for processing.
#[utoipa::path(
    post,
    path = "/api/v1/ingest/{source}",
    tag = "ingest",
    summary = "Push records (JSON object, array or JSON lines)",
    params(("source" = String, Path, description = "Push source name")),
    request_body(content = Object, content_type = "application/json", description = "A JSON object, a JSON array of objects, or JSON lines"),
    responses((status = 202, description = "Accepted for processing", body = crate::schemas::Accepted), (status = 401, description = "No or unknown token", body = ErrorBody), (status = 403, description = "The role may not do this, or the session may only change its password (`password_change_required`)", body = ErrorBody), (status = 400, description = "Bad input; the message says what", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 503, description = "Not available now", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn ingest_push(
    caller: Caller,
    State(s): State<AppState>,
    Path(source): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::Ingest)?;
    let format = *s.0.push.get(&source).ok_or_else(|| ApiError::not_found(format!("no push source {source:?}")))?;
    let now = now_millis();
    let name: Arc<str> = source.as_str().into();
    let trimmed = body.trim_ascii();
    let pieces: Vec<Vec<u8>> = if trimmed.starts_with(b"[") {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(trimmed)
            .map_err(|e| ApiError::bad_request(format!("body is not a JSON array: {e}")))?;
        items.iter().map(|r| r.get().as_bytes().to_vec()).collect()
    } else {
        trimmed
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.trim_ascii().is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    if pieces.is_empty() {
        return Err(ApiError::bad_request("empty body: send a JSON object, an array or JSON lines"));
    }
    let n = pieces.len();
    let batch: Vec<RawRecord> = pieces.into_iter().map(|p| RawRecord::new(name.clone(), format, now, p)).collect();
    publish_within(&s.0.raw, batch, ingest::bus::DELIVERY_TIMEOUT).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": n}))).into_response())
}

/// Puts a push on the raw topic, or answers 503 when the bus takes nothing
/// for `wait` (Kafka down, the embedded topic full), so that the sender
/// sends again rather than wait on a bus that stalls until it recovers.
async fn publish_within(
    raw: &Publisher<RawRecord>,
    batch: Vec<RawRecord>,
    wait: std::time::Duration,
) -> Result<(), ApiError> {
    match tokio::time::timeout(wait, raw.publish(batch)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(ApiError::unavailable("ingest is shutting down")),
        Err(_) => Err(ApiError {
            retry_after: Some(10),
            ..ApiError::unavailable(format!(
                "ingest took none of these records in {} s; send them again (a record may then arrive twice)",
                wait.as_secs()
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bus that takes nothing is a 503 in time, not a request that hangs.
    #[tokio::test]
    async fn a_push_the_bus_does_not_take_is_refused_in_time() {
        let bus = ingest::bus::EmbeddedBus::new(1);
        let raw = ingest::bus::Bus::publisher(&bus, ingest::bus::RAW).expect("publisher");
        let _unread = ingest::bus::Bus::subscriber(&bus, ingest::bus::RAW).expect("subscriber");
        let record = || vec![RawRecord::new("badge".into(), Format::BadgeJson, 1, b"{}".to_vec())];
        let wait = std::time::Duration::from_millis(50);
        assert!(publish_within(&raw, record(), wait).await.is_ok(), "room for one batch");
        let refused = publish_within(&raw, record(), wait).await.expect_err("the topic is full");
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.message.contains("send them again"), "{}", refused.message);
        assert_eq!(refused.retry_after, Some(10));
    }

    /// Past the limit a caller waits for a turn and gets one when a running
    /// export ends; one that waits too long gets 503 `busy` with Retry-After.
    #[tokio::test]
    async fn exports_past_the_limit_wait_their_turn_then_are_turned_away() {
        let turns = Arc::new(tokio::sync::Semaphore::new(1));
        let running = take_turn(&turns, std::time::Duration::ZERO, "evidence exports").await.expect("first turn");
        let refused = take_turn(&turns, std::time::Duration::ZERO, "evidence exports").await.expect_err("busy");
        let response = refused.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("10"));
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["code"], "busy");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("evidence exports")), "{body}");

        let waiting = tokio::spawn({
            let turns = turns.clone();
            async move { take_turn(&turns, Turns::WAIT, "evidence exports").await.map(drop).is_ok() }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "no turn while the first export runs");
        drop(running);
        assert!(waiting.await.expect("task"), "the waiting export gets the freed turn");
    }

    async fn boom() -> Response {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_as_json() {
        let response = answer_panics("/boom", "GET", boom()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("boom"), "the panic's text stays in the log: {body}");
        let fine = answer_panics("/fine", "GET", async { "fine".into_response() }).await;
        assert_eq!(fine.status(), StatusCode::OK, "and the next request is served");
    }
}
