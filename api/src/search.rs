//! Full-text and field search over events, alerts and incidents (tantivy).
//!
//! The index is a derived view of the ledger: each document carries its
//! ledger index, the hit's content is read back from the ledger, and the
//! commit payload records the next ledger index to index, so a restart goes on
//! where it stopped and `custos reindex` rebuilds it from nothing. An incident
//! has one document, its latest recorded version.

use std::net::{IpAddr, Ipv6Addr};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

/// Fields a query can name. Keyword fields match whole values exactly.
pub const KEYWORD_FIELDS: [&str; 24] = [
    "kind",
    "id",
    "class",
    "severity",
    "zone",
    "asset",
    "hostname",
    "user",
    "person",
    "badge",
    "door",
    "area",
    "protocol",
    "ot_function",
    "ot_access",
    "rule",
    "state",
    "entity",
    "attack",
    "source",
    "parser",
    "product",
    "vendor",
    "finding",
];
/// Numeric fields (ranges: `severity_id:[4 TO 6]`).
const U64_FIELDS: [&str; 6] = ["ledger_index", "class_uid", "activity_id", "severity_id", "src_port", "dst_port"];
/// Address fields (ranges and CIDR-like bounds: `src_ip:[10.0.0.0 TO 10.0.0.255]`).
const IP_FIELDS: [&str; 2] = ["src_ip", "dst_ip"];
/// Facets a search may ask for.
pub const FACETS: [&str; 5] = ["kind", "class", "zone", "asset", "severity"];

/// Search failures: a bad query is the caller's; the rest are the index's.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("query: {0}")]
    Query(String),
    #[error("search index {}: {what}", path.display())]
    Index { path: PathBuf, what: String },
}

/// One search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Lucene-like query; empty matches everything.
    pub q: String,
    /// Event time range, UTC ms, `from` inclusive, `to` exclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
    /// Continue after this hit (the previous page's `next_cursor`).
    pub cursor: Option<Cursor>,
    pub facets: Vec<String>,
}

/// Where a page ended: hits are sorted by event time, then ledger index, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub index: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.time, self.index)
    }
    pub fn parse(s: &str) -> Result<Self, SearchError> {
        let bad = || SearchError::Query(format!("cursor {s:?} is not one this server issued"));
        let (t, i) = s.split_once('_').ok_or_else(bad)?;
        Ok(Self { time: t.parse().map_err(|_| bad())?, index: i.parse().map_err(|_| bad())? })
    }
}

/// A page of hits: `(time, ledger index)` of each, newest first.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub hits: Vec<Cursor>,
    pub total: usize,
    pub next_cursor: Option<Cursor>,
    /// Facet name → [(value, count)], largest first.
    pub facets: Vec<(String, Vec<(String, u64)>)>,
}

struct Fields {
    time: Field,
    ledger_index: Field,
    id: Field,
    message: Field,
    raw: Field,
}

pub struct SearchIndex {
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    writer: IndexWriter,
    parser: QueryParser,
    f: Fields,
    /// Next ledger index to index (what the last commit covered).
    committed: u64,
    next: u64,
    pending: usize,
}

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_i64_field("time", INDEXED | FAST);
    for name in U64_FIELDS {
        b.add_u64_field(name, INDEXED | FAST);
    }
    for name in IP_FIELDS {
        b.add_ip_addr_field(name, INDEXED | FAST);
    }
    for name in KEYWORD_FIELDS {
        b.add_text_field(name, STRING | FAST);
    }
    b.add_text_field("message", TEXT);
    b.add_text_field("raw", TEXT);
    b.build()
}

impl SearchIndex {
    /// Opens (or creates) the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        let err = |what: String| SearchError::Index { path: dir.to_path_buf(), what };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("create: {e}")))?;
        let mmap = MmapDirectory::open(dir).map_err(|e| err(e.to_string()))?;
        let index = Index::open_or_create(mmap, schema()).map_err(|e| err(e.to_string()))?;
        let committed = index
            .load_metas()
            .map_err(|e| err(e.to_string()))?
            .payload
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0);
        let writer = index.writer_with_num_threads(1, 96 << 20).map_err(|e| {
            err(match e {
                tantivy::TantivyError::LockFailure(..) => "is locked by another process (is Custos running?)".into(),
                e => e.to_string(),
            })
        })?;
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e| err(e.to_string()))?;
        let s = index.schema();
        let field = |name: &str| s.get_field(name).map_err(|e| err(e.to_string()));
        let f = Fields {
            time: field("time")?,
            ledger_index: field("ledger_index")?,
            id: field("id")?,
            message: field("message")?,
            raw: field("raw")?,
        };
        let mut parser = QueryParser::for_index(&index, vec![f.message, f.raw]);
        parser.set_conjunction_by_default();
        Ok(Self { path: dir.to_path_buf(), index, reader, writer, parser, f, committed, next: committed, pending: 0 })
    }

    /// The next ledger index this index wants.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// The ledger index up to which searches answer (what the last commit covered).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Documents added since the last commit.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Indexes ledger record `index` (of `kind`, with `data`). Records of other
    /// kinds only move the position on.
    pub fn add(&mut self, index: u64, kind: ledger::RecordKind, data: &Value) -> Result<(), SearchError> {
        if index < self.next {
            return Ok(());
        }
        self.next = index + 1;
        let Some(doc) = document(&self.index.schema(), index, kind, data) else {
            return Ok(());
        };
        if kind == ledger::RecordKind::Incident
            && let Some(id) = data.get("id").and_then(Value::as_str)
        {
            // One document per incident: its latest version.
            self.writer.delete_term(Term::from_field_text(self.f.id, id));
        }
        self.writer.add_document(doc).map_err(|e| self.error(e))?;
        self.pending += 1;
        Ok(())
    }

    /// Makes what was added searchable and durable, with the position.
    pub fn commit(&mut self) -> Result<(), SearchError> {
        if self.next == self.committed && self.pending == 0 {
            return Ok(());
        }
        let path = self.path.clone();
        let error = |e: tantivy::TantivyError| SearchError::Index { path: path.clone(), what: e.to_string() };
        let mut prepared = self.writer.prepare_commit().map_err(error)?;
        prepared.set_payload(&self.next.to_string());
        prepared.commit().map_err(error)?;
        self.reader.reload().map_err(|e| self.error(e))?;
        self.committed = self.next;
        self.pending = 0;
        Ok(())
    }

    fn error(&self, e: tantivy::TantivyError) -> SearchError {
        SearchError::Index { path: self.path.clone(), what: e.to_string() }
    }

    /// A handle for searching from other threads.
    pub fn searcher(&self) -> Searcher {
        Searcher {
            reader: self.reader.clone(),
            parser: self.parser.clone(),
            time: self.f.time,
            index: self.f.ledger_index,
        }
    }
}

/// Searches the last committed state of the index; cheap to clone.
#[derive(Clone)]
pub struct Searcher {
    reader: IndexReader,
    parser: QueryParser,
    time: Field,
    index: Field,
}

impl Searcher {
    pub fn search(&self, req: &SearchRequest) -> Result<SearchPage, SearchError> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if req.q.trim().is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        } else {
            let q = self.parser.parse_query(&req.q).map_err(|e| SearchError::Query(e.to_string()))?;
            clauses.push((Occur::Must, q));
        }
        if req.from.is_some() || req.to.is_some() {
            let lower = req.from.map_or(Bound::Unbounded, |t| Bound::Included(Term::from_field_i64(self.time, t)));
            let upper = req.to.map_or(Bound::Unbounded, |t| Bound::Excluded(Term::from_field_i64(self.time, t)));
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        if let Some(c) = req.cursor {
            // Strictly after the cursor in (time, index) descending order.
            let earlier = RangeQuery::new(Bound::Unbounded, Bound::Excluded(Term::from_field_i64(self.time, c.time)));
            let same_time = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(TermQuery::new(Term::from_field_i64(self.time, c.time), IndexRecordOption::Basic))
                        as Box<dyn Query>,
                ),
                (
                    Occur::Must,
                    Box::new(RangeQuery::new(
                        Bound::Unbounded,
                        Bound::Excluded(Term::from_field_u64(self.index, c.index)),
                    )),
                ),
            ]);
            let after =
                BooleanQuery::new(vec![(Occur::Should, Box::new(earlier)), (Occur::Should, Box::new(same_time))]);
            clauses.push((Occur::Must, Box::new(after)));
        }
        let query = BooleanQuery::new(clauses);
        let limit = req.limit.max(1);
        let top = TopDocs::with_limit(limit).order_by((
            (SortByStaticFastValue::<i64>::for_field("time"), Order::Desc),
            (SortByStaticFastValue::<u64>::for_field("ledger_index"), Order::Desc),
        ));
        let searcher = self.reader.searcher();
        let internal =
            |e: tantivy::TantivyError| SearchError::Index { path: PathBuf::from("index"), what: e.to_string() };
        let (top, total) = searcher.search(&query, &(top, Count)).map_err(internal)?;
        let hits: Vec<Cursor> =
            top.into_iter().filter_map(|((t, i), _)| Some(Cursor { time: t?, index: i? })).collect();
        let next_cursor = (hits.len() == limit && total > limit).then(|| hits.last().copied()).flatten();
        let mut facets = Vec::new();
        if !req.facets.is_empty() {
            let mut aggs = serde_json::Map::new();
            for name in &req.facets {
                if !FACETS.contains(&name.as_str()) {
                    return Err(SearchError::Query(format!("no facet {name:?}; facets are {}", FACETS.join(", "))));
                }
                aggs.insert(name.clone(), json!({"terms": {"field": name, "size": 20}}));
            }
            let aggs: Aggregations =
                serde_json::from_value(Value::Object(aggs)).map_err(|e| SearchError::Query(format!("facets: {e}")))?;
            let ctx = AggContextParams::new(AggregationLimitsGuard::default(), Default::default());
            let res: AggregationResults =
                searcher.search(&query, &AggregationCollector::from_aggs(aggs, ctx)).map_err(internal)?;
            let res = serde_json::to_value(res).unwrap_or_default();
            for name in &req.facets {
                let buckets = res[name.as_str()]["buckets"].as_array().cloned().unwrap_or_default();
                let counts = buckets
                    .iter()
                    .filter_map(|b| Some((b["key"].as_str()?.to_owned(), b["doc_count"].as_u64()?)))
                    .collect();
                facets.push((name.clone(), counts));
            }
        }
        Ok(SearchPage { hits, total, next_cursor, facets })
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn text_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

/// OCSF class names as a query would say them.
fn class_name(uid: u64) -> &'static str {
    match uid {
        2004 => "detection_finding",
        3002 => "authentication",
        4001 => "network_activity",
        5019 => "device_config_state_change",
        9001 => "physical_access",
        _ => "base",
    }
}

pub fn severity_name(id: u64) -> &'static str {
    match id {
        1 => "informational",
        2 => "low",
        3 => "medium",
        4 => "high",
        5 => "critical",
        6 => "fatal",
        _ => "unknown",
    }
}

/// The document for a ledger record, or `None` for kinds search does not cover.
fn document(schema: &Schema, index: u64, kind: ledger::RecordKind, d: &Value) -> Option<TantivyDocument> {
    use ledger::RecordKind as K;
    let mut doc = TantivyDocument::new();
    let field = |name: &str| schema.get_field(name).ok();
    let text = |doc: &mut TantivyDocument, name: &str, value: Option<&str>| {
        if let (Some(f), Some(v)) = (field(name), value.filter(|v| !v.is_empty())) {
            doc.add_text(f, v);
        }
    };
    let (kind_name, time) = match kind {
        K::Event => ("event", at(d, &["time"])?.as_i64()?),
        K::Alert => ("alert", at(d, &["time"])?.as_i64()?),
        K::Incident => ("incident", at(d, &["last_alert_at"])?.as_i64()?),
        _ => return None,
    };
    text(&mut doc, "kind", Some(kind_name));
    doc.add_i64(field("time")?, time);
    doc.add_u64(field("ledger_index")?, index);
    let severity = at(d, &["severity_id"]).and_then(Value::as_u64).unwrap_or(0);
    doc.add_u64(field("severity_id")?, severity);
    text(&mut doc, "severity", Some(severity_name(severity)));
    let mut zones: Vec<&str> = Vec::new();
    fn add_zone<'a>(z: Option<&'a str>, zones: &mut Vec<&'a str>) {
        if let Some(z) = z
            && !zones.contains(&z)
        {
            zones.push(z);
        }
    }
    match kind {
        K::Event => {
            let class = at(d, &["class_uid"]).and_then(Value::as_u64).unwrap_or(0);
            doc.add_u64(field("class_uid")?, class);
            text(&mut doc, "class", Some(class_name(class)));
            doc.add_u64(field("activity_id")?, at(d, &["activity_id"]).and_then(Value::as_u64).unwrap_or(0));
            for z in [text_at(d, &["zone"]), text_at(d, &["src", "zone"]), text_at(d, &["dst", "zone"])] {
                add_zone(z, &mut zones);
            }
            let mut assets = Vec::new();
            let mut hosts = Vec::new();
            for side in ["src", "dst", "device"] {
                for (list, key) in [(&mut assets, "asset"), (&mut hosts, "hostname")] {
                    if let Some(v) = text_at(d, &[side, key])
                        && !list.contains(&v)
                    {
                        list.push(v);
                    }
                }
            }
            for a in assets {
                text(&mut doc, "asset", Some(a));
            }
            for h in hosts {
                text(&mut doc, "hostname", Some(h));
            }
            for (name, side) in [("src_ip", "src"), ("dst_ip", "dst")] {
                if let Some(ip) = text_at(d, &[side, "ip"]).and_then(|s| s.parse::<IpAddr>().ok()) {
                    doc.add_ip_addr(field(name)?, ipv6(ip));
                }
            }
            for (name, side) in [("src_port", "src"), ("dst_port", "dst")] {
                if let Some(p) = at(d, &[side, "port"]).and_then(Value::as_u64) {
                    doc.add_u64(field(name)?, p);
                }
            }
            text(&mut doc, "user", text_at(d, &["actor", "user"]));
            text(&mut doc, "person", text_at(d, &["actor", "person"]));
            text(&mut doc, "badge", text_at(d, &["actor", "credential_uid"]));
            text(&mut doc, "door", text_at(d, &["door"]));
            text(&mut doc, "area", text_at(d, &["area"]));
            text(&mut doc, "protocol", text_at(d, &["protocol"]));
            text(&mut doc, "ot_function", text_at(d, &["ot", "function"]));
            text(&mut doc, "ot_access", text_at(d, &["ot", "access"]));
            text(&mut doc, "finding", text_at(d, &["finding", "title"]));
            text(&mut doc, "source", text_at(d, &["metadata", "source"]));
            text(&mut doc, "parser", text_at(d, &["metadata", "parser"]));
            text(&mut doc, "product", text_at(d, &["metadata", "product"]));
            text(&mut doc, "vendor", text_at(d, &["metadata", "vendor"]));
            text(&mut doc, "message", text_at(d, &["message"]));
            match at(d, &["raw"]) {
                Some(Value::String(s)) => text(&mut doc, "raw", Some(s)),
                // Non-UTF-8 raw bytes: searchable as far as they read as text.
                Some(Value::Object(o)) => {
                    if let Some(b) = o.get("base64").and_then(Value::as_str)
                        && let Ok(bytes) = base64_decode(b)
                    {
                        text(&mut doc, "raw", Some(&String::from_utf8_lossy(&bytes)));
                    }
                }
                _ => {}
            }
        }
        K::Alert | K::Incident => {
            text(&mut doc, "id", text_at(d, &["id"]));
            add_zone(text_at(d, &["zone"]), &mut zones);
            text(&mut doc, "entity", text_at(d, &["entity", "id"]));
            text(&mut doc, "state", text_at(d, &["state"]));
            let rules = at(d, &["rules"]).and_then(Value::as_array);
            match rules {
                Some(rules) => rules.iter().for_each(|r| text(&mut doc, "rule", r.as_str())),
                None => text(&mut doc, "rule", text_at(d, &["rule"])),
            }
            for t in at(d, &["attack"]).and_then(Value::as_array).into_iter().flatten() {
                text(&mut doc, "attack", t.as_str());
            }
            let message = [text_at(d, &["title"]), text_at(d, &["summary"])].into_iter().flatten().collect::<Vec<_>>();
            text(&mut doc, "message", Some(&message.join(" — ")));
        }
        _ => {}
    }
    for z in zones {
        text(&mut doc, "zone", Some(z));
    }
    Some(doc)
}

fn ipv6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn base64_decode(s: &str) -> Result<Vec<u8>, ()> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::RecordKind as K;

    fn event(time: i64, zone: &str, user: &str, raw: &str) -> Value {
        json!({"class_uid": 3002, "activity_id": 1, "time": time, "severity_id": 1, "zone": zone,
               "actor": {"user": user}, "src": {"ip": "10.0.0.7", "asset": "EWS-1"},
               "message": "logon", "raw": raw, "metadata": {"source": "s", "parser": "p", "product": "x"}})
    }

    #[test]
    fn search_filters_pages_and_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ix = SearchIndex::open(dir.path()).expect("open");
        for i in 0..25u64 {
            let zone = if i % 5 == 0 { "control-room" } else { "cell-1" };
            ix.add(
                i,
                K::Event,
                &event(1000 + (i as i64 / 2), zone, &format!("u{}", i % 3), &format!("logon ok seq={i}")),
            )
            .expect("add");
        }
        ix.add(25, K::Audit, &json!({"actor": "x"})).expect("other kinds move the position");
        ix.commit().expect("commit");
        assert_eq!(ix.next_index(), 26);
        let s = ix.searcher();
        let req = |q: &str| SearchRequest { q: q.into(), limit: 10, ..SearchRequest::default() };

        let page = s.search(&req("zone:control-room")).expect("search");
        assert_eq!(page.total, 5);
        assert_eq!(page.hits.iter().map(|h| h.index).collect::<Vec<_>>(), vec![20, 15, 10, 5, 0]);

        // Cursor paging walks every hit once, newest first, ties broken by index.
        let mut seen = Vec::new();
        let mut r = req("");
        loop {
            let page = s.search(&r).expect("page");
            seen.extend(page.hits.iter().map(|h| h.index));
            match page.next_cursor {
                Some(c) => r.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).rev().collect::<Vec<_>>());

        assert_eq!(s.search(&req("user:u1 AND raw:seq=4")).expect("search").total, 1);
        assert_eq!(s.search(&req("\"ok seq=13\"")).expect("phrase").hits[0].index, 13);
        assert_eq!(s.search(&req("src_ip:[10.0.0.0 TO 10.0.0.255]")).expect("ip range").total, 25);
        let ranged = SearchRequest { from: Some(1004), to: Some(1006), ..req("") };
        assert_eq!(s.search(&ranged).expect("time range").total, 4);
        assert!(matches!(s.search(&req("zone:(")), Err(SearchError::Query(_))));
        assert!(matches!(s.search(&req("colour:red")), Err(SearchError::Query(_))));

        let faceted = SearchRequest { facets: vec!["zone".into(), "class".into()], ..req("") };
        let page = s.search(&faceted).expect("facets");
        assert_eq!(page.facets[0], ("zone".into(), vec![("cell-1".into(), 20), ("control-room".into(), 5)]));
        assert_eq!(page.facets[1], ("class".into(), vec![("authentication".into(), 25)]));
        let bad = SearchRequest { facets: vec!["colour".into()], ..req("") };
        assert!(matches!(s.search(&bad), Err(SearchError::Query(_))));
    }

    #[test]
    fn an_incident_is_one_document_and_the_position_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inc = |state: &str, t: i64| {
            json!({"id": "INC-1", "rule": "r", "rules": ["r"], "title": "Badge denied then login", "severity_id": 4,
                   "state": state, "attack": ["T0859"], "entity": {"kind": "person", "id": "alice"},
                   "opened_at": 1, "last_alert_at": t, "alerts": [], "events": []})
        };
        {
            let mut ix = SearchIndex::open(dir.path()).expect("open");
            ix.add(0, K::Incident, &inc("new", 10)).expect("add");
            ix.add(1, K::Incident, &inc("acknowledged", 11)).expect("add");
            ix.commit().expect("commit");
        }
        let ix = SearchIndex::open(dir.path()).expect("reopen");
        assert_eq!(ix.next_index(), 2);
        let s = ix.searcher();
        let page = s.search(&SearchRequest { q: "kind:incident".into(), limit: 5, ..Default::default() }).expect("s");
        assert_eq!((page.total, page.hits[0].index), (1, 1));
        let q =
            SearchRequest { q: "state:acknowledged AND attack:T0859 AND badge".into(), limit: 5, ..Default::default() };
        assert_eq!(s.search(&q).expect("s").total, 1);
    }
}
