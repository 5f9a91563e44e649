//! Read-only SQL (DataFusion) over the Parquet archive.
//!
//! Each query gets a fresh session that sees the archive's files as they are
//! at that moment. Statements other than queries are refused by the planner
//! (no DDL, DML or `SET`), a query runs under a time limit and a memory limit,
//! and at most `max_rows` rows come back (`truncated` says when there were more).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::json::ArrayWriter;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::archive::Table;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The caller's: it does not parse, names what is not there, or is not a query.
    #[error("{0}")]
    Query(String),
    #[error("the query ran longer than {0:?} and was stopped")]
    Timeout(Duration),
    #[error("sql engine: {0}")]
    Engine(String),
}

/// Limits on one query.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    pub timeout: Duration,
    pub max_rows: usize,
    pub memory_bytes: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), max_rows: 10_000, memory_bytes: 512 << 20 }
    }
}

/// A query's answer.
#[derive(Debug, Clone)]
pub struct SqlResult {
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Value>,
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub struct SqlEngine {
    archive: PathBuf,
}

/// The latest recorded version of each incident.
const INCIDENTS_VIEW: &str = "CREATE VIEW incidents AS \
     SELECT h.* FROM incident_history h \
     JOIN (SELECT id AS latest_id, max(ledger_index) AS latest FROM incident_history GROUP BY id) l \
     ON h.ledger_index = l.latest";

impl SqlEngine {
    pub fn new(archive: &Path) -> Self {
        Self { archive: archive.to_path_buf() }
    }

    async fn session(&self, limits: &SqlLimits) -> Result<SessionContext, SqlError> {
        let engine = |e: datafusion::error::DataFusionError| SqlError::Engine(e.to_string());
        let runtime =
            RuntimeEnvBuilder::new().with_memory_limit(limits.memory_bytes, 1.0).build_arc().map_err(engine)?;
        let config = SessionConfig::new().with_target_partitions(2).with_information_schema(true);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        for table in Table::ALL {
            let dir = self.archive.join(table.name());
            std::fs::create_dir_all(&dir).map_err(|e| SqlError::Engine(format!("archive {}: {e}", dir.display())))?;
            let url = ListingTableUrl::parse(format!("{}/", dir.display())).map_err(engine)?;
            let partitions = table
                .partitions()
                .iter()
                .map(|p| (p.to_string(), if *p == "class" { DataType::UInt32 } else { DataType::Utf8 }))
                .collect();
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(partitions);
            let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(table.schema());
            let listing = ListingTable::try_new(config).map_err(engine)?;
            ctx.register_table(table.name(), Arc::new(listing)).map_err(engine)?;
        }
        ctx.sql(INCIDENTS_VIEW).await.map_err(engine)?;
        Ok(ctx)
    }

    /// Runs one read-only query.
    pub async fn query(&self, sql: &str, limits: SqlLimits) -> Result<SqlResult, SqlError> {
        let operators = operators(sql)?;
        if operators > MAX_OPERATORS {
            return Err(SqlError::Query(format!(
                "the query has {operators} operators; at most {MAX_OPERATORS} are accepted \
                 (write long lists of alternatives as `IN (...)`)"
            )));
        }
        let ctx = self.session(&limits).await?;
        let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let run = async {
            let df = ctx.sql_with_options(sql, read_only).await.map_err(|e| SqlError::Query(clean(&e)))?;
            let schema = df.schema().as_arrow().clone();
            let mut stream = df.execute_stream().await.map_err(|e| SqlError::Query(clean(&e)))?;
            let mut batches = Vec::new();
            let (mut rows, mut truncated) = (0usize, false);
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| SqlError::Query(clean(&e)))?;
                let room = limits.max_rows - rows;
                if batch.num_rows() > room {
                    batches.push(batch.slice(0, room));
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
            }
            Ok::<_, SqlError>((schema, batches, truncated))
        };
        let (schema, batches, truncated) =
            tokio::time::timeout(limits.timeout, run).await.map_err(|_| SqlError::Timeout(limits.timeout))??;
        let mut writer = ArrayWriter::new(Vec::new());
        let refs: Vec<_> = batches.iter().collect();
        writer.write_batches(&refs).map_err(|e| SqlError::Engine(e.to_string()))?;
        writer.finish().map_err(|e| SqlError::Engine(e.to_string()))?;
        let bytes = writer.into_inner();
        let rows = if bytes.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice::<Vec<Value>>(&bytes).map_err(|e| SqlError::Engine(e.to_string()))?
        };
        let columns = schema.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect();
        Ok(SqlResult { columns, rows, truncated })
    }
}

/// Operators one query may hold. DataFusion copies and drops expression
/// trees recursively, without the stack checks its planner has: a chain of a
/// thousand `OR`s overflowed a 2 MiB thread stack (debug build), which aborts the process.
/// Counting tokens before anything is parsed bounds every such tree.
const MAX_OPERATORS: usize = 128;

/// Tokens of `sql` that can nest an expression or a query one level deeper:
/// operators, casts, `CASE`, set operations and joins. Literals, names,
/// commas and parentheses (the parser limits those to 50 levels) do not count,
/// so `IN` lists and long select lists are not limited.
fn operators(sql: &str) -> Result<usize, SqlError> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword as K;
    use datafusion::sql::sqlparser::tokenizer::{Token as T, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().map_err(|e| SqlError::Query(e.to_string()))?;
    let nests = |t: &T| match t {
        T::Word(w) => matches!(
            w.keyword,
            K::AND
                | K::OR
                | K::XOR
                | K::NOT
                | K::IS
                | K::LIKE
                | K::ILIKE
                | K::SIMILAR
                | K::BETWEEN
                | K::CASE
                | K::UNION
                | K::INTERSECT
                | K::EXCEPT
                | K::JOIN
                | K::AT
                | K::COLLATE
        ),
        T::EOF
        | T::Number(..)
        | T::Char(_)
        | T::SingleQuotedString(_)
        | T::DoubleQuotedString(_)
        | T::TripleSingleQuotedString(_)
        | T::TripleDoubleQuotedString(_)
        | T::DollarQuotedString(_)
        | T::SingleQuotedByteStringLiteral(_)
        | T::DoubleQuotedByteStringLiteral(_)
        | T::TripleSingleQuotedByteStringLiteral(_)
        | T::TripleDoubleQuotedByteStringLiteral(_)
        | T::SingleQuotedRawStringLiteral(_)
        | T::DoubleQuotedRawStringLiteral(_)
        | T::TripleSingleQuotedRawStringLiteral(_)
        | T::TripleDoubleQuotedRawStringLiteral(_)
        | T::NationalStringLiteral(_)
        | T::EscapedStringLiteral(_)
        | T::UnicodeStringLiteral(_)
        | T::HexStringLiteral(_)
        | T::Comma
        | T::Whitespace(_)
        | T::LParen
        | T::RParen
        | T::Period
        | T::SemiColon
        | T::Placeholder(_) => false,
        // `*` in `SELECT *` and `count(*)` counts too: a few per query.
        _ => true,
    };
    Ok(tokens.iter().filter(|t| nests(t)).count())
}

/// DataFusion's message without its internal prefixes.
fn clean(e: &datafusion::error::DataFusionError) -> String {
    let s = e.to_string();
    let s = s.strip_prefix("SQL error: ").unwrap_or(&s);
    let s = s.strip_prefix("Error during planning: ").unwrap_or(s);
    s.replace("ParserError(", "").trim_end_matches(')').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Archive;
    use ledger::RecordKind;
    use serde_json::json;

    const DAY: i64 = 1_795_687_200_000;

    fn archive() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = Archive::open(dir.path()).expect("open");
        for i in 0..30u64 {
            let zone = if i % 3 == 0 { "control-room" } else { "cell-1" };
            let t = DAY + (i as i64 % 2) * 86_400_000;
            let mut e = ingest::Event::new(ingest::event::EventClass::PhysicalAccess, 1, t, t, b"x");
            e.message = "granted".into();
            e.zone = Some(zone.into());
            e.actor_mut().person = Some("alice".into());
            e.metadata.parser = "badge-json".into();
            a.add_event(i, t, &e, None);
        }
        let inc = |state: &str| {
            json!({"id": "INC-1", "rule": "r", "rules": ["r"], "title": "t", "severity_id": 4, "state": state,
                   "attack": [], "entity": {"kind": "person", "id": "alice"}, "opened_at": DAY, "last_alert_at": DAY,
                   "alerts": ["a"], "events": [1, 2], "history": []})
        };
        a.add(30, RecordKind::Incident, DAY, &inc("new"));
        let mut closed = inc("closed");
        closed["assignee"] = "sam".into();
        closed["notes"] = json!([{"by": "sam", "at": DAY, "text": "badge reader fault"}]);
        a.add(31, RecordKind::Incident, DAY, &closed);
        a.add(
            32,
            RecordKind::Signature,
            DAY,
            &json!({"signer": "qa", "printed_name": "Q. A.", "meaning": "reviewed",
              "reason": "batch 7", "record_index": 3, "record_sha256": "00"}),
        );
        a.flush().expect("flush");
        dir
    }

    #[test]
    fn operators_are_counted_outside_literals_and_comments() {
        let sql = "SELECT count(*) FROM events WHERE zone IN ('a+b', 'c OR d', 'e') AND person = 'x' -- a OR b";
        assert_eq!(operators(sql).expect("tokens"), 3, "*, AND and =");
        assert_eq!(operators("SELECT a::int::int FROM t WHERE NOT (x BETWEEN 1 AND 2)").expect("tokens"), 5);
        assert!(operators("SELECT 'unclosed").is_err());
    }

    /// `terms` alternatives joined by OR: `2 * terms` operators with `count(*)`.
    fn alternatives(terms: usize) -> String {
        let any: Vec<String> = (0..terms).map(|i| format!("zone = 'z{i}'")).collect();
        format!("SELECT count(*) AS n FROM events WHERE {}", any.join(" OR "))
    }

    /// A query at the limit runs on a thread with a worker's default 2 MiB
    /// stack (a debug build's frames are the largest); one past it is refused
    /// before DataFusion sees it.
    #[test]
    fn operator_limit_keeps_deep_queries_off_the_stack() {
        let dir = archive();
        let path = dir.path().to_path_buf();
        let answer = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                let sql = SqlEngine::new(&path);
                let n = MAX_OPERATORS;
                // Each as deep as the limit lets it be.
                let deepest = [
                    format!("SELECT {}1 AS x", "1 + ".repeat(n)),
                    format!("SELECT {}1 AS x", "- ".repeat(n)),
                    format!("SELECT 1{} AS x", "::bigint".repeat(n)),
                    format!("SELECT {}true AS x", "NOT ".repeat(n)),
                ];
                for q in deepest {
                    assert_eq!(operators(&q).expect("tokens"), n, "{q}");
                    match rt.block_on(sql.query(&q, SqlLimits::default())) {
                        Ok(_) => {}
                        // The parser refuses prefix chains itself: an error, not an abort.
                        Err(SqlError::Query(_)) if q.starts_with("SELECT - ") || q.starts_with("SELECT NOT") => {}
                        Err(e) => panic!("{e}: {}", &q[..40]),
                    }
                }
                let at_limit = rt.block_on(sql.query(&alternatives(n / 2), SqlLimits::default()));
                let past = rt.block_on(sql.query(&alternatives(n / 2 + 1), SqlLimits::default()));
                (at_limit.map(|r| r.rows), past.map(|r| r.rows))
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert_eq!(answer.0.expect("at the limit"), vec![json!({"n": 0})]);
        let refused = answer.1.expect_err("past the limit").to_string();
        assert!(refused.contains("130 operators; at most 128"), "{refused}");
    }

    #[tokio::test]
    async fn queries_answer_and_everything_else_is_refused() {
        let dir = archive();
        let sql = SqlEngine::new(dir.path());
        let q = |s: &'static str| sql.query(s, SqlLimits::default());
        let r =
            q("SELECT day, zone, count(*) AS n FROM events GROUP BY day, zone ORDER BY day, zone").await.expect("q");
        assert_eq!(r.rows.len(), 4);
        assert_eq!(r.rows[0], json!({"day": "2026-11-26", "zone": "cell-1", "n": 10}));
        assert_eq!(r.columns[2].0, "n");
        let r = q("SELECT state, assignee, notes FROM incidents").await.expect("view");
        let notes = r#"[{"at":1795687200000,"by":"sam","text":"badge reader fault"}]"#;
        assert_eq!(
            r.rows,
            vec![json!({"state": "closed", "assignee": "sam", "notes": notes})],
            "the latest version only"
        );
        let r = q("SELECT printed_name, meaning FROM signatures").await.expect("signatures");
        assert_eq!(r.rows, vec![json!({"printed_name": "Q. A.", "meaning": "reviewed"})]);
        let r = q("SELECT count(*) AS n FROM events WHERE class = 9001 AND day = '2026-11-27'").await.expect("q");
        assert_eq!(r.rows, vec![json!({"n": 15})]);

        let limited = sql.query("SELECT * FROM events", SqlLimits { max_rows: 7, ..SqlLimits::default() }).await;
        let limited = limited.expect("limited");
        assert_eq!((limited.rows.len(), limited.truncated), (7, true));

        for bad in [
            "DROP TABLE events",
            "CREATE TABLE x AS SELECT 1",
            "INSERT INTO events SELECT * FROM events",
            "COPY events TO '/tmp/x.parquet'",
            "SET datafusion.execution.batch_size = 1",
            "SELECT nope FROM events",
            "SELEC 1",
        ] {
            assert!(matches!(q(bad).await, Err(SqlError::Query(_))), "{bad}");
        }
    }
}
