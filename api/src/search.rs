//! Full-text and field search over events, alerts and incidents (tantivy).
//!
//! The index is a derived view of the ledger: each document carries its
//! ledger index, the hit's content is read back from the ledger, and the
//! commit payload records the next ledger index to index, so a restart goes on
//! where it stopped and `custos reindex` rebuilds it from nothing. An incident
//! has one document, its latest recorded version.

mod deadline;
mod query;
mod words;

use std::net::{IpAddr, Ipv6Addr};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use ingest::Event;
use serde_json::{Value, json};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::{AggContextParams, AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::UserOperation;
use tantivy::query::{AllQuery, BooleanQuery, EnableScoring, Occur, Query, QueryParser, RangeQuery, Scorer};
use tantivy::schema::{FAST, Field, IpAddrOptions, NumericOptions, STRING, Schema, TEXT, TextOptions};
use tantivy::{
    COLLECT_BLOCK_BUFFER_LEN, DocSet, Index, IndexReader, IndexWriter, Order, ReloadPolicy, SegmentReader, TERMINATED,
    TantivyDocument, Term,
};

/// Fields a query can name. Keyword fields match whole values exactly.
pub const KEYWORD_FIELDS: [&str; 25] = [
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
    "assignee",
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
    #[error("the search ran longer than {0:?} and was stopped; narrow it (a time range, a field, fewer facets)")]
    Timeout(std::time::Duration),
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
    /// How long the search may run; [`TIME_LIMIT`] if not given.
    pub time_limit: Option<std::time::Duration>,
    /// Oldest hits first instead of newest first.
    pub oldest_first: bool,
}

/// How long a search may run unless its request says otherwise.
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a page ended: hits are sorted by event time, then ledger index,
/// newest first (or oldest first, as the request asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub index: u64,
}

impl Cursor {
    /// The text handed to clients; it names the order it was issued in, as
    /// "after this hit" means the opposite in the other order.
    pub fn encode(&self, oldest_first: bool) -> String {
        let order = if oldest_first { "_oldest" } else { "" };
        format!("{}_{}{order}", self.time, self.index)
    }
    /// Reads a cursor for a request in `oldest_first` order; one issued for
    /// the other order is refused, saying which order to pass.
    pub fn parse(s: &str, oldest_first: bool) -> Result<Self, SearchError> {
        let bad = || SearchError::Query(format!("cursor {s:?} is not one this server issued"));
        let (position, issued_oldest) = match s.strip_suffix("_oldest") {
            Some(p) => (p, true),
            None => (s, false),
        };
        let (t, i) = position.split_once('_').ok_or_else(bad)?;
        let cursor = Self { time: t.parse().map_err(|_| bad())?, index: i.parse().map_err(|_| bad())? };
        if issued_oldest != oldest_first {
            let issued = if issued_oldest { "oldest" } else { "newest" };
            return Err(SearchError::Query(format!(
                "cursor {s:?} continues a search with order={issued}: pass order={issued} with it"
            )));
        }
        Ok(cursor)
    }
}

/// A page of hits: `(time, ledger index)` of each, in the request's order.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub hits: Vec<Cursor>,
    pub total: usize,
    /// `false` when `total` is a lower bound (see [`TOTAL_EXACT_UP_TO`]).
    pub total_exact: bool,
    pub next_cursor: Option<Cursor>,
    /// Facet name → [(value, count)], largest first.
    pub facets: Vec<(String, Vec<(String, u64)>)>,
}

/// Every field's handle, looked up once rather than by name per value.
macro_rules! fields {
    ($($name:ident),* $(,)?) => {
        struct Fields {
            $($name: Field,)*
        }

        impl Fields {
            fn of(schema: &Schema) -> tantivy::Result<Self> {
                Ok(Self { $($name: schema.get_field(stringify!($name))?,)* })
            }
        }
    };
}

fields!(
    time,
    ledger_index,
    class_uid,
    activity_id,
    severity_id,
    src_port,
    dst_port,
    src_ip,
    dst_ip,
    kind,
    id,
    class,
    severity,
    zone,
    asset,
    hostname,
    user,
    person,
    badge,
    door,
    area,
    protocol,
    ot_function,
    ot_access,
    rule,
    state,
    assignee,
    entity,
    attack,
    source,
    parser,
    product,
    vendor,
    finding,
    message,
    raw,
);

pub struct SearchIndex {
    path: PathBuf,
    reader: IndexReader,
    writer: IndexWriter,
    parser: QueryParser,
    f: Fields,
    /// Next ledger index to index (what the last commit covered).
    committed: u64,
    next: u64,
    pending: usize,
    /// Operations handed to the writer [`BATCH`] at a time: each hand-over
    /// is a channel send and, often, a thread woken.
    batch: Vec<UserOperation>,
}

/// Operations per hand-over to tantivy's indexing threads. Its channel holds
/// 10,000 hand-overs, so this also bounds the documents waiting there.
const BATCH: usize = 8;

fn schema() -> Schema {
    let mut b = Schema::builder();
    // Columns (FAST) only where sorting and facets need them: each costs
    // indexing time, and ranges on the others use the terms dictionary.
    // Time and ledger index are unique per document: as columns only (ranges
    // read them there) they keep the terms dictionary small.
    b.add_i64_field("time", FAST);
    for name in U64_FIELDS {
        let options = if name == "ledger_index" { FAST.into() } else { NumericOptions::default().set_indexed() };
        b.add_u64_field(name, options);
    }
    for name in IP_FIELDS {
        b.add_ip_addr_field(name, IpAddrOptions::default().set_indexed());
    }
    for name in KEYWORD_FIELDS {
        b.add_text_field(name, without_norms(if FACETS.contains(&name) { STRING | FAST } else { STRING }));
    }
    b.add_text_field("message", without_norms(TEXT));
    b.add_text_field("raw", without_norms(TEXT));
    b.build()
}

/// Hits are sorted by time, never scored, so no field keeps norms: they
/// cost a byte per field per document, and time on every document indexed.
/// (Numeric and address fields have none unless asked.)
fn without_norms(options: TextOptions) -> TextOptions {
    match options.get_indexing_options() {
        Some(indexing) => {
            let indexing = indexing.clone().set_fieldnorms(false);
            options.set_indexing_options(indexing)
        }
        None => options,
    }
}

impl SearchIndex {
    /// Opens (or creates) the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        let err = |what: String| SearchError::Index { path: dir.to_path_buf(), what };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("create: {e}")))?;
        let mut mmap = MmapDirectory::open(dir).map_err(|e| err(e.to_string()))?;
        if Index::exists(&mmap).map_err(|e| err(e.to_string()))?
            && Index::open(mmap.clone()).map_err(|e| err(e.to_string()))?.schema() != schema()
        {
            // An index an earlier version wrote: it is derived, so it is rebuilt
            // from the ledger (the position starts again at 0).
            tracing::warn!(path = %dir.display(), "search index has another layout; rebuilding it from the ledger");
            std::fs::remove_dir_all(dir).and_then(|()| std::fs::create_dir_all(dir)).map_err(|e| err(e.to_string()))?;
            mmap = MmapDirectory::open(dir).map_err(|e| err(e.to_string()))?;
        }
        let index = Index::open_or_create(mmap, schema()).map_err(|e| err(e.to_string()))?;
        index.tokenizers().register("default", words::Words::default());
        let committed = index
            .load_metas()
            .map_err(|e| err(e.to_string()))?
            .payload
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0);
        let writer = index.writer_with_num_threads(2, 192 << 20).map_err(|e| {
            err(match e {
                tantivy::TantivyError::LockFailure(..) => "is locked by another process (is Custos running?)".into(),
                e => e.to_string(),
            })
        })?;
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e| err(e.to_string()))?;
        let f = Fields::of(&index.schema()).map_err(|e| err(e.to_string()))?;
        let defaults = query::DEFAULT_FIELDS.iter().map(|name| index.schema().get_field(name));
        let defaults = defaults.collect::<tantivy::Result<_>>().map_err(|e| err(e.to_string()))?;
        let mut parser = QueryParser::for_index(&index, defaults);
        parser.set_conjunction_by_default();
        // Only for prefixes: `query` refuses the user's own regexes.
        parser.allow_regexes();
        Ok(Self {
            path: dir.to_path_buf(),
            reader,
            writer,
            parser,
            f,
            committed,
            next: committed,
            pending: 0,
            batch: Vec::with_capacity(BATCH),
        })
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

    /// Indexes the event in ledger record `index`.
    pub fn add_event(&mut self, index: u64, event: &Event) -> Result<(), SearchError> {
        if index < self.next {
            return Ok(());
        }
        self.next = index + 1;
        let doc = event_document(&self.f, index, event);
        self.push(UserOperation::Add(doc))
    }

    fn push(&mut self, op: UserOperation) -> Result<(), SearchError> {
        if let UserOperation::Add(_) = op {
            self.pending += 1;
        }
        self.batch.push(op);
        if self.batch.len() >= BATCH {
            self.hand_over()?;
        }
        Ok(())
    }

    fn hand_over(&mut self) -> Result<(), SearchError> {
        // Drained, not replaced: the batch's buffer serves the next eight.
        let handed = self.writer.run(self.batch.drain(..)).map(drop);
        handed.map_err(|e| self.error(e))
    }

    /// Indexes ledger record `index` of another `kind` (alerts and incident
    /// versions); records search does not cover only move the position on.
    pub fn add(&mut self, index: u64, kind: ledger::RecordKind, data: &Value) -> Result<(), SearchError> {
        if index < self.next {
            return Ok(());
        }
        self.next = index + 1;
        let Some(doc) = finding_document(&self.f, index, kind, data) else {
            return Ok(());
        };
        if kind == ledger::RecordKind::Incident
            && let Some(id) = data.get("id").and_then(Value::as_str)
        {
            // One document per incident: its latest version.
            self.push(UserOperation::Delete(Term::from_field_text(self.f.id, id)))?;
        }
        self.push(UserOperation::Add(doc))
    }

    /// Makes what was added searchable and durable, with the position.
    pub fn commit(&mut self) -> Result<(), SearchError> {
        if self.next == self.committed && self.pending == 0 {
            return Ok(());
        }
        self.hand_over()?;
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
            clauses.push((Occur::Must, query::parse(&self.parser, &req.q)?));
        }
        if req.from.is_some() || req.to.is_some() {
            let lower = req.from.map_or(Bound::Unbounded, |t| Bound::Included(Term::from_field_i64(self.time, t)));
            let upper = req.to.map_or(Bound::Unbounded, |t| Bound::Excluded(Term::from_field_i64(self.time, t)));
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        if let Some(c) = req.cursor {
            // Strictly after the cursor in the page order: an earlier (later) time,
            // or the same time and a lower (higher) ledger index.
            let (time, index) = (Term::from_field_i64(self.time, c.time), Term::from_field_u64(self.index, c.index));
            let beyond = |term: Term| match req.oldest_first {
                false => RangeQuery::new(Bound::Unbounded, Bound::Excluded(term)),
                true => RangeQuery::new(Bound::Excluded(term), Bound::Unbounded),
            };
            let same_time = RangeQuery::new(Bound::Included(time.clone()), Bound::Included(time.clone()));
            let same_time = BooleanQuery::new(vec![
                (Occur::Must, Box::new(same_time) as Box<dyn Query>),
                (Occur::Must, Box::new(beyond(index))),
            ]);
            let after =
                BooleanQuery::new(vec![(Occur::Should, Box::new(beyond(time))), (Occur::Should, Box::new(same_time))]);
            clauses.push((Occur::Must, Box::new(after)));
        }
        let time_limit = req.time_limit.unwrap_or(TIME_LIMIT);
        let deadline = deadline::Deadline::at(std::time::Instant::now() + time_limit);
        let query = deadline.bound(Box::new(BooleanQuery::new(clauses)));
        let query = query.as_ref();
        let limit = req.limit.max(1);
        let searcher = self.reader.searcher();
        let internal =
            |e: tantivy::TantivyError| SearchError::Index { path: PathBuf::from("index"), what: e.to_string() };
        let (hits, total, total_exact) = self.top(&searcher, query, req, limit).map_err(internal)?;
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
                searcher.search(query, &AggregationCollector::from_aggs(aggs, ctx)).map_err(internal)?;
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
        if deadline.cut_short() {
            return Err(SearchError::Timeout(time_limit));
        }
        Ok(SearchPage { hits, total, total_exact, next_cursor, facets })
    }

    /// The first `limit` hits in the page order and the number of hits (exact
    /// up to [`TOTAL_EXACT_UP_TO`]). Segments are visited in that order; those
    /// that cannot hold one of the first hits are only counted, and in the others
    /// only events on the near side of a time bound are ranked (see
    /// [`rank_bound`]), so a query matching millions of events costs about what
    /// the first events cost.
    ///
    /// The bounds are worked out in a "rank time" that grows towards the front
    /// of the page: the event time newest first, its negation oldest first.
    fn top(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        req: &SearchRequest,
        limit: usize,
    ) -> tantivy::Result<(Vec<Cursor>, usize, bool)> {
        let asc = req.oldest_first;
        let rank = |t: i64| if asc { t.saturating_neg() } else { t };
        let order = if asc { Order::Asc } else { Order::Desc };
        let top = TopDocs::with_limit(limit).order_by((
            (SortByStaticFastValue::<i64>::for_field("time"), order),
            (SortByStaticFastValue::<u64>::for_field("ledger_index"), order),
        ));
        let collector = (top, Count);
        let scoring = EnableScoring::disabled_from_searcher(searcher);
        let weight = query.weight(scoring)?;
        let mut segments = Vec::new();
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            let time = reader.fast_fields().i64("time")?;
            let (min, max) = (time.min_value(), time.max_value());
            let outside = reader.num_docs() == 0
                || req.from.is_some_and(|f| max < f)
                || req.to.is_some_and(|t| min >= t)
                || req.cursor.is_some_and(|c| if asc { max < c.time } else { min > c.time });
            if !outside {
                segments.push((ord as u32, reader, min, max));
            }
        }
        // The segment's front and back in rank time.
        let span = |min: i64, max: i64| if asc { (rank(min), rank(max)) } else { (max, min) };
        segments.sort_by_key(|s| std::cmp::Reverse(span(s.2, s.3).0));
        let in_page_order = |a: &SortKey, b: &SortKey| if asc { a.cmp(b) } else { b.cmp(a) };
        let mut best: Vec<(SortKey, tantivy::DocAddress)> = Vec::new();
        let (mut total, mut exact) = (0usize, true);
        for (ord, reader, min, max) in segments {
            let (front, back) = span(min, max);
            // The last hit of a full page, in rank time.
            let last_kept = (best.len() == limit).then(|| best.last().and_then(|b| b.0.0)).flatten().map(rank);
            if last_kept.is_some_and(|t| front < t) {
                // Nothing here comes before the hits in hand: only count.
                count_more(|| weight.scorer(reader, 1.0), reader, &mut total, &mut exact)?;
                continue;
            }
            let merge = |best: &mut Vec<(SortKey, _)>, fruit| -> tantivy::Result<usize> {
                let (segment_top, n): (Vec<_>, usize) = collector.merge_fruits(vec![fruit])?;
                best.extend(segment_top);
                best.sort_by(|a, b| in_page_order(&a.0, &b.0));
                best.truncate(limit);
                Ok(n)
            };
            // The scorer's estimate of its matches (an upper bound for most
            // queries). The scorer is kept: a prefix's costs as much to make as to read.
            let scorer = weight.scorer(reader, 1.0)?;
            let matches = scorer.size_hint() as usize;
            // Where the window of a guess may lie: within the segment and the
            // request, whose cursor bounds the side the page continues from.
            let cursor = req.cursor.map(|c| c.time);
            let (to, from) = (req.to.map(|t| t.saturating_sub(1)), req.from);
            let newest = [to, cursor.filter(|_| !asc)].into_iter().flatten().fold(max, i64::min);
            let oldest = [from, cursor.filter(|_| asc)].into_iter().flatten().fold(min, i64::max);
            let range = if asc { (rank(newest), rank(oldest)) } else { (oldest, newest) };
            let bound = rank_bound(last_kept, limit - best.len(), matches, front.saturating_sub(back), range);
            if let Some(from) = bound {
                let near = match asc {
                    false => RangeQuery::new(Bound::Included(Term::from_field_i64(self.time, from)), Bound::Unbounded),
                    true => {
                        RangeQuery::new(Bound::Unbounded, Bound::Included(Term::from_field_i64(self.time, rank(from))))
                    }
                };
                let recent = BooleanQuery::new(vec![(Occur::Must, query.box_clone()), (Occur::Must, Box::new(near))]);
                let mut ranked = best.clone();
                merge(&mut ranked, collector.collect_segment(recent.weight(scoring)?.as_ref(), ord, reader)?)?;
                // Exact when the page is full of hits on the near side of the
                // bound: everything left out comes after all of them.
                if ranked.len() == limit && ranked.last().and_then(|b| b.0.0).is_some_and(|t| rank(t) >= from) {
                    best = ranked;
                    count_more(|| Ok(scorer), reader, &mut total, &mut exact)?;
                    continue;
                }
            }
            total += merge(&mut best, collect_scorer(&collector, ord, reader, scorer)?)?;
        }
        let hits = best.into_iter().filter_map(|((t, i), _)| Some(Cursor { time: t?, index: i? })).collect();
        Ok((hits, total, exact))
    }
}

/// The rank time (see [`Searcher::top`]: larger is nearer the front of the
/// page) from which a segment's hits are worth ranking, if any. Ranking costs
/// per match and bounding by time costs a scan of the time column, so a
/// segment with few `matches` within `range` (the segment's rank times that
/// the request allows) is ranked whole. Otherwise, with a full page in hand
/// (`last_kept`, its last hit), only hits at or before it in the page order
/// can enter it; while `wanted` places are still empty, the bound is a guess:
/// a window ending at the front of the range that holds 8 × `wanted` matches
/// if they are spread evenly over the segment's time `span`. The caller ranks
/// the whole segment when the window held too few.
fn rank_bound(last_kept: Option<i64>, wanted: usize, matches: usize, span: i64, range: (i64, i64)) -> Option<i64> {
    /// Below this many matches, ranking a whole segment is cheap (tiny in
    /// tests, so that their few documents walk the bounded paths too).
    const MANY: usize = if cfg!(test) { 8 } else { 32_768 };
    // Matches expected within the range (a time range makes the scorer's
    // estimate, which ignores it, far too high).
    let in_range = matches as i128 * (range.1 as i128 - range.0 as i128 + 1).max(0) / (span as i128 + 1);
    if in_range < MANY as i128 {
        return None;
    }
    if let Some(t) = last_kept {
        return Some(t);
    }
    let window = (span as i128 + 1) * (8 * wanted as i128) / matches as i128;
    let from = (range.1 as i128 - window).max(i64::MIN as i128) as i64;
    (from > range.0).then_some(from)
}

/// A hit's place: (time, ledger index).
type SortKey = (Option<i64>, Option<u64>);

/// Hits are counted exactly up to this many; beyond it `total` is a lower
/// bound (`total_exact` false), as counting millions would cost more than the
/// search. Facets and SQL count exactly.
pub const TOTAL_EXACT_UP_TO: usize = 10_000;

/// Adds a segment's matches to `total` while it is below the cap (`scorer`
/// is only made then).
fn count_more(
    scorer: impl FnOnce() -> tantivy::Result<Box<dyn Scorer>>,
    reader: &SegmentReader,
    total: &mut usize,
    exact: &mut bool,
) -> tantivy::Result<()> {
    if *total < TOTAL_EXACT_UP_TO {
        let (n, complete) = count_up_to(scorer()?, reader, TOTAL_EXACT_UP_TO - *total);
        *total += n;
        *exact &= complete;
    } else {
        *exact = false;
    }
    Ok(())
}

/// Matching live documents in a segment, stopping at `cap`; `false` when it stopped.
fn count_up_to(mut scorer: Box<dyn Scorer>, reader: &SegmentReader, cap: usize) -> (usize, bool) {
    let alive = reader.alive_bitset();
    let mut n = 0;
    let mut doc = scorer.doc();
    while doc != TERMINATED {
        if alive.is_none_or(|a| a.is_alive(doc)) {
            n += 1;
            if n >= cap {
                return (n, scorer.advance() == TERMINATED);
            }
        }
        doc = scorer.advance();
    }
    (n, true)
}

/// What `collector` makes of a segment's live matches, read from `scorer`
/// a block at a time as tantivy's `collect_segment` reads them, without
/// making the scorer again.
fn collect_scorer<C: Collector>(
    collector: &C,
    ord: u32,
    reader: &SegmentReader,
    mut scorer: Box<dyn Scorer>,
) -> tantivy::Result<<C::Child as SegmentCollector>::Fruit> {
    let mut segment = collector.for_segment(ord, reader)?;
    let alive = reader.alive_bitset();
    let mut block = [0; COLLECT_BLOCK_BUFFER_LEN];
    loop {
        let n = scorer.fill_buffer(&mut block);
        if n == 0 {
            break;
        }
        match alive {
            None => segment.collect_block(&block[..n]),
            Some(alive) => block[..n].iter().filter(|&&d| alive.is_alive(d)).for_each(|&d| segment.collect(d, 0.0)),
        }
    }
    Ok(segment.harvest())
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

/// A document being built; values that are absent or empty are left out.
struct Doc {
    doc: TantivyDocument,
}

impl Doc {
    /// The fields every document has.
    fn new(f: &Fields, kind: &str, index: u64, time: i64, severity: u64) -> Self {
        let mut d = Self { doc: TantivyDocument::new() };
        d.text(f.kind, Some(kind));
        d.doc.add_i64(f.time, time);
        d.doc.add_u64(f.ledger_index, index);
        d.doc.add_u64(f.severity_id, severity);
        d.text(f.severity, Some(severity_name(severity)));
        d
    }

    fn text(&mut self, field: Field, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.doc.add_text(field, v);
        }
    }

    fn ip(&mut self, field: Field, value: Option<IpAddr>) {
        if let Some(ip) = value {
            self.doc.add_ip_addr(field, ipv6(ip));
        }
    }

    /// Adds each distinct value once (no allocation: this runs per event).
    fn distinct<const N: usize>(&mut self, field: Field, values: [Option<&str>; N]) {
        for (i, v) in values.iter().enumerate() {
            if v.is_some() && !values[..i].contains(v) {
                self.text(field, *v);
            }
        }
    }
}

/// The document for an event.
fn event_document(f: &Fields, index: u64, e: &Event) -> TantivyDocument {
    let mut d = Doc::new(f, "event", index, e.time, u64::from(e.severity_id));
    let class = u64::from(e.class_uid);
    d.doc.add_u64(f.class_uid, class);
    d.text(f.class, Some(class_name(class)));
    d.doc.add_u64(f.activity_id, u64::from(e.activity_id));
    let (src, dst, device) = (e.src.as_ref(), e.dst.as_ref(), e.device.as_ref());
    d.distinct(f.zone, [e.zone.as_deref(), src.and_then(|s| s.zone.as_deref()), dst.and_then(|s| s.zone.as_deref())]);
    d.distinct(
        f.asset,
        [
            src.and_then(|s| s.asset.as_deref()),
            dst.and_then(|s| s.asset.as_deref()),
            device.and_then(|s| s.asset.as_deref()),
        ],
    );
    d.distinct(
        f.hostname,
        [
            src.and_then(|s| s.hostname.as_deref()),
            dst.and_then(|s| s.hostname.as_deref()),
            device.and_then(|s| s.hostname.as_deref()),
        ],
    );
    d.ip(f.src_ip, src.and_then(|s| s.ip));
    d.ip(f.dst_ip, dst.and_then(|s| s.ip));
    if let Some(p) = src.and_then(|s| s.port) {
        d.doc.add_u64(f.src_port, u64::from(p));
    }
    if let Some(p) = dst.and_then(|s| s.port) {
        d.doc.add_u64(f.dst_port, u64::from(p));
    }
    let actor = e.actor.as_ref();
    d.text(f.user, actor.and_then(|a| a.user.as_deref()));
    d.text(f.person, actor.and_then(|a| a.person.as_deref()));
    d.text(f.badge, actor.and_then(|a| a.credential_uid.as_deref()));
    d.text(f.door, e.door.as_deref());
    d.text(f.area, e.area.as_deref());
    d.text(f.protocol, e.protocol.as_deref());
    if let Some(ot) = &e.ot {
        d.text(f.ot_function, ot.function.as_deref());
        let access = match ot.access {
            ingest::event::OtAccess::Read => "read",
            ingest::event::OtAccess::Write => "write",
            ingest::event::OtAccess::Other => "other",
        };
        d.text(f.ot_access, Some(access));
    }
    d.text(f.finding, e.finding.as_ref().map(|f| f.title.as_str()));
    d.text(f.source, Some(&e.metadata.source));
    d.text(f.parser, Some(&e.metadata.parser));
    d.text(f.product, Some(&e.metadata.product));
    d.text(f.vendor, e.metadata.vendor.as_deref());
    d.text(f.message, Some(&e.message));
    // Non-UTF-8 raw bytes are searchable as far as they read as text (the
    // strict check first: it is several times faster on the usual text).
    match std::str::from_utf8(&e.raw.0) {
        Ok(raw) => d.text(f.raw, Some(raw)),
        Err(_) => d.text(f.raw, Some(&String::from_utf8_lossy(&e.raw.0))),
    }
    d.doc
}

/// The document for an alert or an incident version; `None` for other kinds.
fn finding_document(f: &Fields, index: u64, kind: ledger::RecordKind, v: &Value) -> Option<TantivyDocument> {
    use ledger::RecordKind as K;
    let (kind_name, time) = match kind {
        K::Alert => ("alert", at(v, &["time"])?.as_i64()?),
        K::Incident => ("incident", at(v, &["last_alert_at"])?.as_i64()?),
        _ => return None,
    };
    let severity = at(v, &["severity_id"]).and_then(Value::as_u64).unwrap_or(0);
    let mut d = Doc::new(f, kind_name, index, time, severity);
    d.text(f.id, text_at(v, &["id"]));
    d.text(f.zone, text_at(v, &["zone"]));
    d.text(f.entity, text_at(v, &["entity", "id"]));
    d.text(f.state, text_at(v, &["state"]));
    d.text(f.assignee, text_at(v, &["assignee"]));
    match at(v, &["rules"]).and_then(Value::as_array) {
        Some(rules) => rules.iter().for_each(|r| d.text(f.rule, r.as_str())),
        None => d.text(f.rule, text_at(v, &["rule"])),
    }
    for t in at(v, &["attack"]).and_then(Value::as_array).into_iter().flatten() {
        d.text(f.attack, t.as_str());
    }
    // An incident's notes are searched as its text: what analysts found.
    let notes = at(v, &["notes"]).and_then(Value::as_array).into_iter().flatten().filter_map(|n| text_at(n, &["text"]));
    let message = [text_at(v, &["title"]), text_at(v, &["summary"])].into_iter().flatten().chain(notes);
    d.text(f.message, Some(&message.collect::<Vec<_>>().join(" — ")));
    Some(d.doc)
}

fn ipv6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::query::{MAX_NESTING, nesting};
    use super::*;
    use ledger::RecordKind as K;

    /// The ledger indexes of a page's hits, in order.
    fn indexes(page: &SearchPage) -> Vec<u64> {
        page.hits.iter().map(|h| h.index).collect()
    }

    /// Every hit of `r`, page by page along the cursors.
    fn page_through(s: &Searcher, mut r: SearchRequest) -> Vec<u64> {
        let mut seen = Vec::new();
        loop {
            let page = s.search(&r).expect("page");
            seen.extend(indexes(&page));
            match page.next_cursor {
                Some(c) => r.cursor = Some(c),
                None => return seen,
            }
        }
    }

    fn event(time: i64, zone: &str, user: &str, raw: &str) -> Event {
        let mut e = Event::new(ingest::event::EventClass::Authentication, 1, time, time, raw.as_bytes());
        e.zone = Some(zone.into());
        e.actor_mut().user = Some(user.into());
        e.src_mut().ip = "10.0.0.7".parse().ok();
        e.src_mut().asset = Some("EWS-1".into());
        e.message = "logon".into();
        e
    }

    /// The deepest queries the limit lets through run on a thread with a
    /// worker's default 2 MiB stack (a debug build's frames are the largest);
    /// one level more is refused before the parser sees it.
    #[test]
    fn nesting_limit_keeps_deep_queries_off_the_stack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ix = SearchIndex::open(dir.path()).expect("open");
        ix.add_event(0, &event(1_000, "cell-1", "alice", "login a b")).expect("add");
        ix.commit().expect("commit");
        let (s, s_long) = (ix.searcher(), ix.searcher());
        let n = MAX_NESTING;
        let deepest = [
            "(".repeat(n) + "a" + &")".repeat(n),
            "raw:(".repeat(n) + "a" + &")".repeat(n),
            "(b OR ".repeat(n) + "a" + &")".repeat(n),
            "a AND ".to_owned() + &"NOT (".repeat(n / 2) + "b" + &")".repeat(n / 2),
            "x AND ".to_owned() + &"NOT ".repeat(n) + "a",
        ];
        for q in &deepest {
            assert_eq!(nesting(q), n, "{q}");
        }
        let answers = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let search = |q: String| s.search(&SearchRequest { q, limit: 10, ..Default::default() });
                let at_limit: Vec<_> = deepest.into_iter().map(|q| search(q).map(|p| p.total)).collect();
                (at_limit, search("(".repeat(n + 1) + "a" + &")".repeat(n + 1)).map(|p| p.total))
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        let totals: Vec<_> = answers.0.into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
        // Each answers (search::query's tests check what NOTs match); the groups find the event.
        assert!(totals.iter().all(Result::is_ok), "{totals:?}");
        assert_eq!(totals[..3], [Ok(1), Ok(1), Ok(1)]);
        let refused = answers.1.expect_err("past the limit").to_string();
        assert!(refused.contains("65 parentheses and NOTs; at most 64"), "{refused}");
        let long = s_long.search(&SearchRequest { q: "a ".repeat(2049), limit: 1, ..Default::default() });
        assert!(long.expect_err("too long").to_string().contains("longer than 4096 bytes"));
        // Quoted or not, every parenthesis counts: a quote cannot hide nesting.
        assert_eq!(nesting(r#"("a)" ("b)" c"#), 2);
        assert_eq!(nesting("NOTICE NOT(a)"), 3);
    }

    #[test]
    fn search_filters_pages_and_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ix = SearchIndex::open(dir.path()).expect("open");
        for i in 0..25u64 {
            let zone = if i % 5 == 0 { "control-room" } else { "cell-1" };
            ix.add_event(i, &event(1000 + (i as i64 / 2), zone, &format!("u{}", i % 3), &format!("logon ok seq={i}")))
                .expect("add");
            if i == 8 || i == 16 {
                // Several segments: the newest-first walk must cross them.
                ix.commit().expect("commit");
            }
        }
        ix.add(25, K::Audit, &json!({"actor": "x"})).expect("other kinds move the position");
        ix.commit().expect("commit");
        assert_eq!(ix.next_index(), 26);
        let s = ix.searcher();
        let req = |q: &str| SearchRequest { q: q.into(), limit: 10, ..SearchRequest::default() };

        let page = s.search(&req("zone:control-room")).expect("search");
        assert_eq!(page.total, 5);
        assert_eq!(indexes(&page), vec![20, 15, 10, 5, 0]);

        // Cursor paging walks every hit once, newest first, ties broken by index,
        // or oldest first.
        assert_eq!(page_through(&s, req("")), (0..25).rev().collect::<Vec<_>>());
        assert_eq!(page_through(&s, SearchRequest { oldest_first: true, ..req("") }), (0..25).collect::<Vec<_>>());
        let oldest = SearchRequest { oldest_first: true, ..req("zone:control-room") };
        assert_eq!(indexes(&s.search(&oldest).expect("search")), vec![0, 5, 10, 15, 20]);

        assert_eq!(s.search(&req("user:u1 AND raw:seq=4")).expect("search").total, 1);
        assert_eq!(s.search(&req("\"ok seq=13\"")).expect("phrase").hits[0].index, 13);
        assert_eq!(s.search(&req("src_ip:[10.0.0.0 TO 10.0.0.255]")).expect("ip range").total, 25);
        let ranged = SearchRequest { from: Some(1004), to: Some(1006), ..req("") };
        assert_eq!(s.search(&ranged).expect("time range").total, 4);
        assert!(matches!(s.search(&req("zone:(")), Err(SearchError::Query(_))));
        assert!(matches!(s.search(&req("colour:red")), Err(SearchError::Query(_))));
        assert_eq!(s.search(&req("ledger_index:[3 TO 4]")).expect("range").total, 2);
        assert!(matches!(s.search(&req("ledger_index:3")), Err(SearchError::Query(m)) if m.contains("ranges only")));

        let faceted = SearchRequest { facets: vec!["zone".into(), "class".into()], ..req("") };
        let page = s.search(&faceted).expect("facets");
        assert_eq!(page.facets[0], ("zone".into(), vec![("cell-1".into(), 20), ("control-room".into(), 5)]));
        assert_eq!(page.facets[1], ("class".into(), vec![("authentication".into(), 25)]));
        let bad = SearchRequest { facets: vec!["colour".into()], ..req("") };
        assert!(matches!(s.search(&bad), Err(SearchError::Query(_))));
    }

    #[test]
    fn a_search_past_its_time_limit_is_stopped_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ix = SearchIndex::open(dir.path()).expect("open");
        for i in 0..3u64 {
            ix.add_event(i, &event(1_000 + i as i64, "cell-1", "u", "logon")).expect("add");
        }
        ix.commit().expect("commit");
        let s = ix.searcher();
        let req = |time_limit| SearchRequest { q: "logon".into(), limit: 5, time_limit, ..Default::default() };
        let stopped = s.search(&req(Some(std::time::Duration::ZERO))).expect_err("no time at all");
        assert!(matches!(stopped, SearchError::Timeout(d) if d.is_zero()), "{stopped}");
        assert!(stopped.to_string().contains("was stopped; narrow it"));
        assert_eq!(s.search(&req(None)).expect("within the default limit").total, 3);
    }

    #[test]
    fn large_counts_stop_at_the_cap_and_say_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ix = SearchIndex::open(dir.path()).expect("open");
        let old = TOTAL_EXACT_UP_TO as u64 + 5;
        for i in 0..old {
            ix.add_event(i, &event(1_000 + i as i64, "cell-1", "u", "old")).expect("add");
        }
        ix.commit().expect("commit");
        for i in old..old + 10 {
            ix.add_event(i, &event(1_000_000 + i as i64, "cell-1", "u", "new")).expect("add");
        }
        ix.commit().expect("commit");
        let s = ix.searcher();
        let page = s.search(&SearchRequest { limit: 5, ..Default::default() }).expect("search");
        assert_eq!(indexes(&page), (old + 5..old + 10).rev().collect::<Vec<_>>());
        assert_eq!((page.total, page.total_exact), (TOTAL_EXACT_UP_TO, false));
        assert!(page.next_cursor.is_some());
        // Old events only: exact if one segment holds them all (the writer's
        // threads may have split them), else capped, and said so.
        let page = s.search(&SearchRequest { to: Some(1_000_000), limit: 5, ..Default::default() }).expect("search");
        assert_eq!(page.hits[0].index, old - 1);
        assert!(
            [(old as usize, true), (TOTAL_EXACT_UP_TO, false)].contains(&(page.total, page.total_exact)),
            "{} {}",
            page.total,
            page.total_exact
        );
        let page = s.search(&SearchRequest { q: "new".into(), limit: 50, ..Default::default() }).expect("search");
        assert_eq!((page.total, page.total_exact), (10, true));
    }

    #[test]
    fn ranking_from_a_guessed_time_bound_gives_the_same_first_hits() {
        // Dense old events and a few far newer ones in the same segments, and
        // the same mirrored in time (so that both orders meet both shapes). For
        // `cell-1` (old events only) a window guessed from the density holds
        // no hit, and the whole segment is ranked after all.
        let dense_old = |i: u64| if i % 10 == 9 { 1_000_000 + i as i64 } else { i as i64 };
        let dense_new = |i: u64| 2_000_000 - dense_old(i);
        for time in [&dense_old as &dyn Fn(u64) -> i64, &dense_new] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut ix = SearchIndex::open(dir.path()).expect("open");
            let qc_lab = |i: u64| i % 10 == 9 || i.is_multiple_of(7);
            for i in 0..60u64 {
                let zone = if qc_lab(i) { "qc-lab" } else { "cell-1" };
                ix.add_event(i, &event(time(i), zone, "u", "x")).expect("add");
            }
            ix.commit().expect("commit");
            let s = ix.searcher();
            for oldest_first in [false, true] {
                let first = |pick: &dyn Fn(u64) -> bool, n: usize| {
                    let mut all: Vec<u64> = (0..60).filter(|&i| pick(i)).collect();
                    all.sort_by_key(|&i| (time(i), i));
                    if !oldest_first {
                        all.reverse();
                    }
                    all.truncate(n);
                    all
                };
                let req = |q: &str, limit| SearchRequest { q: q.into(), limit, oldest_first, ..Default::default() };
                for limit in [1, 3, 6, 10, 25, 60] {
                    let page = s.search(&req("", limit)).expect("search");
                    assert_eq!(indexes(&page), first(&|_| true, limit), "{limit} {oldest_first}");
                    assert_eq!(page.total, 60);
                    for (zone, pick) in [("qc-lab", &qc_lab as &dyn Fn(u64) -> bool), ("cell-1", &|i| !qc_lab(i))] {
                        let page = s.search(&req(&format!("zone:{zone}"), limit)).expect("search");
                        assert_eq!(indexes(&page), first(pick, limit), "{zone} {oldest_first}");
                        assert_eq!(page.total, first(pick, 60).len());
                    }
                    // A time range and cursor paging bound the window too.
                    for (from, to) in [(10, 1_000_030), (999_990, 1_999_995)] {
                        let ranged = SearchRequest { from: Some(from), to: Some(to), ..req("", limit) };
                        let within = |i: u64| (from..to).contains(&time(i));
                        assert_eq!(indexes(&s.search(&ranged).expect("search")), first(&within, limit), "{limit}");
                    }
                    let cell_1 = req("zone:cell-1", limit);
                    assert_eq!(page_through(&s, cell_1), first(&|i| !qc_lab(i), 60), "paging by {limit}");
                }
            }
        }
        assert_eq!(rank_bound(Some(5), 0, 1 << 20, 100, (0, 100)), Some(5), "a full page bounds every later segment");
        assert_eq!(rank_bound(Some(5), 0, 4, 100, (0, 100)), None, "few matches are ranked whole");
        assert_eq!(rank_bound(None, 10, 4, 100, (0, 100)), None, "few matches are ranked whole");
        assert_eq!(rank_bound(Some(5), 0, 100, 999, (0, 49)), None, "few matches within the range");
        assert_eq!(rank_bound(None, 10, 1000, 999, (0, 999)), Some(919), "about 80 of 1,000 evenly spread matches");
        assert_eq!(rank_bound(None, 10, 1000, 999, (0, 499)), Some(419), "ending where the request ends");
        assert_eq!(rank_bound(None, 10, 1000, 999, (450, 499)), None, "a request narrower than the window");
        assert_eq!(rank_bound(None, 200, 1000, 999, (0, 999)), None, "a window as wide as the segment");
    }

    #[test]
    fn an_index_of_another_layout_is_rebuilt_from_the_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut b = Schema::builder();
            b.add_text_field("raw", TEXT);
            let old = Index::create_in_dir(dir.path(), b.build()).expect("old index");
            let mut w: IndexWriter = old.writer_with_num_threads(1, 15_000_000).expect("writer");
            let mut commit = w.prepare_commit().expect("prepare");
            commit.set_payload("500");
            commit.commit().expect("commit");
        }
        let mut ix = SearchIndex::open(dir.path()).expect("open");
        assert_eq!(ix.next_index(), 0, "the old index's position does not count");
        ix.add_event(0, &event(1, "cell-1", "u", "x")).expect("add");
        ix.commit().expect("commit");
        assert_eq!(ix.searcher().search(&SearchRequest { limit: 5, ..Default::default() }).expect("search").total, 1);
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
            let mut noted = inc("acknowledged", 11);
            noted["notes"] = json!([{"by": "sam", "at": 11, "text": "reader on door 3 is faulty"}]);
            noted["assignee"] = json!("sam");
            ix.add(1, K::Incident, &noted).expect("add");
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
        // An id pasted without a field finds its incident, whole ids only.
        let found =
            |q: &str| s.search(&SearchRequest { q: q.into(), limit: 5, ..Default::default() }).expect("s").total;
        assert_eq!((found("INC-1"), found("INC-2"), found("INC")), (1, 0, 0));
        assert_eq!(
            (found("assignee:sam"), found("assignee:ana"), found("kind:incident AND NOT assignee:*")),
            (1, 0, 0)
        );
        assert_eq!((found("kind:incident AND \"door 3 is faulty\""), found("\"door 4\"")), (1, 0), "its notes' text");
    }
}
