//! What a query means: tantivy's Lucene-like grammar, with its limits, read
//! as Lucene's and Elasticsearch's users mean it. The parsed query is
//! rewritten before tantivy reads it:
//!
//! - tantivy reads `a AND NOT b` as `a AND (NOT b)`, and a group of nothing
//!   but exclusions matches no document there, so `a AND NOT b` found nothing,
//!   `a OR NOT b` found `a`, and `NOT b` was refused. A group of exclusions
//!   now excludes from everything.
//! - `hostname:EWS*` searched for the term `EWS*` and found nothing: a
//!   trailing `*` is now a prefix (a leading or inner one is refused).
//! - `user:*` (the field has a value) needs a column, which most fields do
//!   not keep: it failed as a server error. Where there is no column it is
//!   now every term of the field.

use tantivy::query::{Occur, Query, QueryParser, QueryParserError};
use tantivy::query_grammar::{self, Delimiter, UserInputAst, UserInputBound, UserInputLeaf, UserInputLiteral};

use super::{FACETS, IP_FIELDS, KEYWORD_FIELDS, SearchError, U64_FIELDS};

/// The fields a term without a field searches.
pub(super) const FULL_TEXT_FIELDS: [&str; 2] = ["message", "raw"];

/// What a word without a field is looked for in: the full text, and ids
/// whole (an analyst pastes `INC-000042` or an alert id into the search box).
pub(super) const DEFAULT_FIELDS: [&str; 3] = ["message", "raw", "id"];

/// Longest query accepted, in bytes.
pub(super) const MAX_QUERY_BYTES: usize = 4096;

/// Levels a query may nest. tantivy's query parser and its queries recurse
/// once per level: 500 parentheses overflowed a 2 MiB thread stack (debug build), which
/// aborts the process. Nobody writes more than a handful.
pub(super) const MAX_NESTING: usize = 64;

/// An upper bound on how deep `q` nests: every `(` (a field's group too) and
/// every `NOT`, wherever they are. Counting only unquoted ones would need
/// the parser's exact rules for quotes and escapes, and a mistake there would
/// let a deep query through.
pub(super) fn nesting(q: &str) -> usize {
    q.matches('(').count() + q.matches("NOT").count()
}

/// Parses a non-blank query `q` for `parser`'s index.
pub(super) fn parse(parser: &QueryParser, q: &str) -> Result<Box<dyn Query>, SearchError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(SearchError::Query(format!("q is longer than {MAX_QUERY_BYTES} bytes")));
    }
    let depth = nesting(q);
    if depth > MAX_NESTING {
        return Err(SearchError::Query(format!(
            "the query has {depth} parentheses and NOTs; at most {MAX_NESTING} are accepted"
        )));
    }
    let ast = query_grammar::parse_query(q).map_err(|_| SearchError::Query(format!("Syntax Error: {q}")))?;
    let ast = everything_but(meant(ast)?);
    parser.build_query_from_user_input_ast(ast).map_err(|e| match e {
        QueryParserError::FieldNotIndexed(f) if f == "ledger_index" => {
            SearchError::Query("ledger_index takes ranges only, e.g. ledger_index:[5 TO 5]".into())
        }
        e => SearchError::Query(e.to_string()),
    })
}

/// `ast` with every group of exclusions only made to exclude from every
/// document. A required group of exclusions (`a AND NOT b`) is lifted into
/// its parent instead, where the parent's other clauses bound it.
fn everything_but(ast: UserInputAst) -> UserInputAst {
    match ast {
        UserInputAst::Leaf(_) => ast,
        UserInputAst::Boost(inner, boost) => UserInputAst::Boost(Box::new(everything_but(*inner)), boost),
        UserInputAst::Clause(children) => {
            // Lifting is exact only where every clause is required or excluded
            // (beside a required clause, tantivy treats optional ones as scoring only).
            let conjunction = children.iter().all(|(o, _)| matches!(o, Some(Occur::Must | Occur::MustNot)));
            let mut clauses = Vec::with_capacity(children.len() + 1);
            for (occur, child) in children {
                match child {
                    UserInputAst::Clause(inner)
                        if conjunction && occur == Some(Occur::Must) && only_exclusions(&inner) =>
                    {
                        clauses.extend(inner.into_iter().map(|(o, c)| (o, everything_but(c))));
                    }
                    child => clauses.push((occur, everything_but(child))),
                }
            }
            if only_exclusions(&clauses) {
                clauses.push((Some(Occur::Must), UserInputAst::from(UserInputLeaf::All)));
            }
            UserInputAst::Clause(clauses)
        }
    }
}

/// `ast` with its wildcards and "has a value" leaves in terms tantivy reads
/// as the user means them; user regexes are refused (a regex can walk every
/// term of the raw records).
fn meant(ast: UserInputAst) -> Result<UserInputAst, SearchError> {
    Ok(match ast {
        UserInputAst::Leaf(leaf) => match *leaf {
            UserInputLeaf::Literal(literal) if literal.delimiter == Delimiter::None && literal.phrase.contains('*') => {
                prefix(literal)?
            }
            UserInputLeaf::Exists { field } => has_a_value(field)?,
            UserInputLeaf::Regex { .. } => {
                return Err(SearchError::Query("regexes are not accepted; a term may end in * (prefix)".into()));
            }
            leaf => UserInputAst::Leaf(Box::new(leaf)),
        },
        UserInputAst::Boost(inner, boost) => UserInputAst::Boost(Box::new(meant(*inner)?), boost),
        UserInputAst::Clause(children) => UserInputAst::Clause(
            children.into_iter().map(|(o, c)| Ok((o, meant(c)?))).collect::<Result<_, SearchError>>()?,
        ),
    })
}

/// `field:*`. tantivy answers it from the field's column, which only the
/// facets, time and ledger index have; elsewhere it is every term of the
/// field (any word, any number, any address).
fn has_a_value(field: String) -> Result<UserInputAst, SearchError> {
    let from = |lowest: &str| UserInputLeaf::Range {
        field: Some(field.clone()),
        lower: UserInputBound::Inclusive(lowest.into()),
        upper: UserInputBound::Unbounded,
    };
    let leaf = match field.as_str() {
        f if FACETS.contains(&f) || f == "time" || f == "ledger_index" => UserInputLeaf::Exists { field },
        f if KEYWORD_FIELDS.contains(&f) || FULL_TEXT_FIELDS.contains(&f) => {
            UserInputLeaf::Regex { field: Some(field), pattern: ".*".into() }
        }
        f if U64_FIELDS.contains(&f) => from("0"),
        f if IP_FIELDS.contains(&f) => from("::"),
        _ => return Err(no_such_field(&field)),
    };
    Ok(UserInputAst::from(leaf))
}

/// tantivy's words for a field the schema does not have.
fn no_such_field(field: &str) -> SearchError {
    SearchError::Query(QueryParserError::FieldDoesNotExist(field.into()).to_string())
}

/// A term ending in `*`: every term of the field that starts with the rest.
/// On keyword fields that is a prefix of the whole value; on full-text fields,
/// of a word (lower case, as words are indexed), or, when the rest is several
/// words, a phrase whose last word is a prefix.
fn prefix(literal: UserInputLiteral) -> Result<UserInputAst, SearchError> {
    let Some(start) = literal.phrase.strip_suffix('*').filter(|s| !s.is_empty() && !s.contains('*')) else {
        return Err(SearchError::Query(format!(
            "{:?}: * may only end a term (a prefix, e.g. hostname:EWS*); quote a value that holds *",
            literal.phrase
        )));
    };
    let regex = |field: &str, start: &str| {
        UserInputAst::from(UserInputLeaf::Regex { field: Some(field.into()), pattern: regex::escape(start) + ".*" })
    };
    let fields = match literal.field_name.as_deref() {
        Some(field) if KEYWORD_FIELDS.contains(&field) => return Ok(regex(field, start)),
        Some(field) if FULL_TEXT_FIELDS.contains(&field) => vec![field],
        Some(field) if U64_FIELDS.contains(&field) || IP_FIELDS.contains(&field) => {
            return Err(SearchError::Query(format!(
                "{field}:{}: numbers and addresses take ranges, not prefixes (e.g. {field}:[a TO b])",
                literal.phrase
            )));
        }
        Some(field) => return Err(no_such_field(field)),
        None => FULL_TEXT_FIELDS.to_vec(),
    };
    let words = start.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).count();
    if words == 0 {
        return Err(SearchError::Query(format!("{:?}: a prefix needs a letter or digit before *", literal.phrase)));
    }
    let last_is_whole = !start.ends_with(char::is_alphanumeric);
    let per_field = |field: &str| match (words, last_is_whole) {
        (1, false) => regex(field, &start.trim_start_matches(|c: char| !c.is_alphanumeric()).to_lowercase()),
        // `10.0.*`: the words 10 and 0, the last one whole.
        (_, whole) => UserInputAst::from(UserInputLeaf::Literal(UserInputLiteral {
            field_name: Some(field.into()),
            phrase: start.into(),
            delimiter: Delimiter::DoubleQuotes,
            slop: 0,
            prefix: !whole,
        })),
    };
    let mut alternatives: Vec<_> = fields.iter().map(|f| (Some(Occur::Should), per_field(f))).collect();
    Ok(if alternatives.len() == 1 { alternatives.remove(0).1 } else { UserInputAst::Clause(alternatives) })
}

fn only_exclusions(clauses: &[(Option<Occur>, UserInputAst)]) -> bool {
    !clauses.is_empty() && clauses.iter().all(|(o, _)| *o == Some(Occur::MustNot))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use crate::search::{SearchError, SearchIndex, SearchRequest, Searcher};

    /// 27 events, one for each (zone, user, word of the raw record) of three
    /// each; ledger index `9 * zone + 3 * user + word`.
    fn plant() -> (tempfile::TempDir, Searcher) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ix = SearchIndex::open(dir.path()).expect("open");
        for i in 0..27u64 {
            let (zone, user, word) = (i / 9, i / 3 % 3, i % 3);
            let raw = format!("logon w{word}");
            let mut e = ingest::Event::new(ingest::event::EventClass::Authentication, 1, 1_000, 1_000, raw.as_bytes());
            e.zone = Some(format!("z{zone}").into());
            e.actor_mut().user = Some(format!("u{user}").into());
            ix.add_event(i, &e).expect("add");
        }
        ix.commit().expect("commit");
        (dir, ix.searcher())
    }

    fn matches(s: &Searcher, q: &str) -> BTreeSet<u64> {
        let page = s.search(&SearchRequest { q: q.into(), limit: 100, ..Default::default() });
        page.unwrap_or_else(|e| panic!("{q}: {e}")).hits.iter().map(|h| h.index).collect()
    }

    fn events(keep: impl Fn(u64, u64, u64) -> bool) -> BTreeSet<u64> {
        (0..27).filter(|i| keep(i / 9, i / 3 % 3, i % 3)).collect()
    }

    #[test]
    fn exclusions_exclude_from_everything() {
        let (_dir, s) = plant();
        let cases: [(&str, BTreeSet<u64>); 9] = [
            ("zone:z0 AND NOT user:u1", events(|z, u, _| z == 0 && u != 1)),
            ("zone:z0 -user:u1", events(|z, u, _| z == 0 && u != 1)),
            ("NOT user:u1 AND zone:z0", events(|z, u, _| z == 0 && u != 1)),
            ("zone:z0 OR NOT w1", events(|z, _, w| z == 0 || w != 1)),
            ("NOT zone:z0", events(|z, _, _| z != 0)),
            ("-zone:z0 -zone:z1", events(|z, _, _| z == 2)),
            ("NOT zone:z0 AND NOT w2", events(|z, _, w| z != 0 && w != 2)),
            ("w0 AND (user:u0 OR NOT zone:z2)", events(|z, u, w| w == 0 && (u == 0 || z != 2))),
            ("NOT (NOT zone:z1 AND NOT zone:z2)", events(|z, _, _| z != 0)),
        ];
        for (q, want) in cases {
            assert_eq!(matches(&s, q), want, "{q}");
        }
    }

    #[test]
    fn a_trailing_star_is_a_prefix() {
        let (_dir, s) = plant();
        let cases: [(&str, BTreeSet<u64>); 11] = [
            ("zone:z*", events(|_, _, _| true)),
            ("user:u1*", events(|_, u, _| u == 1)),
            // Keywords are matched as written; words are indexed in lower case.
            ("zone:Z*", BTreeSet::new()),
            ("W1*", events(|_, _, w| w == 1)),
            ("raw:logo*", events(|_, _, _| true)),
            ("message:logo*", BTreeSet::new()),
            ("raw:logon-w1*", events(|_, _, w| w == 1)),
            ("raw:logon.*", events(|_, _, _| true)),
            ("\"logon w\"*", events(|_, _, _| true)),
            ("user:u1* AND NOT w0*", events(|_, u, w| u == 1 && w != 0)),
            // Quoted, a * is part of the value.
            ("zone:\"z*\"", BTreeSet::new()),
        ];
        for (q, want) in cases {
            assert_eq!(matches(&s, q), want, "{q}");
        }
        for (q, says) in [
            ("*gon", "* may only end a term"),
            ("raw:lo*on", "* may only end a term"),
            ("raw:.*", "needs a letter or digit"),
            ("raw:/lo.*/", "regexes are not accepted"),
            ("src_port:50*", "take ranges, not prefixes"),
            ("colour:re*", "colour"),
        ] {
            let refused = s.search(&SearchRequest { q: q.into(), limit: 5, ..Default::default() });
            let message = refused.expect_err(q).to_string();
            assert!(message.contains(says), "{q}: {message}");
        }
    }

    #[test]
    fn field_star_finds_the_events_where_the_field_has_a_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ix = SearchIndex::open(dir.path()).expect("open");
        for i in 0..4u64 {
            let mut e = ingest::Event::new(ingest::event::EventClass::Authentication, 1, 1_000, 1_000, b"logon");
            if i % 2 == 0 {
                e.actor_mut().user = Some("alice".into());
                e.zone = Some("cell-1".into());
                e.src_mut().port = Some(4_000);
            }
            ix.add_event(i, &e).expect("add");
        }
        ix.commit().expect("commit");
        let s = ix.searcher();
        // user: a keyword without a column; zone: a facet with one; src_port: a number.
        for q in ["user:*", "zone:*", "src_port:*", "user:* AND zone:*"] {
            assert_eq!(matches(&s, q), BTreeSet::from([0, 2]), "{q}");
        }
        assert_eq!(matches(&s, "NOT user:*"), BTreeSet::from([1, 3]));
        assert_eq!(matches(&s, "raw:*").len(), 4);
        let unknown = s.search(&SearchRequest { q: "colour:*".into(), limit: 5, ..Default::default() });
        assert!(matches!(unknown, Err(SearchError::Query(m)) if m.contains("colour")));
    }

    /// A query over the plant's fields, and the events it means.
    #[derive(Debug, Clone)]
    enum Expr {
        Zone(u64),
        User(u64),
        Word(u64),
        Not(Box<Expr>, bool),
        And(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
    }

    impl Expr {
        /// Every group in parentheses: what tantivy's grammar makes of
        /// mixed operators without them is its own precedence, not ours.
        fn text(&self) -> String {
            match self {
                Expr::Zone(z) => format!("zone:z{z}"),
                Expr::User(u) => format!("user:u{u}"),
                Expr::Word(w) => format!("w{w}"),
                Expr::Not(e, dash) => {
                    let sign = if *dash { "-" } else { "NOT " };
                    match **e {
                        // The grammar takes one sign per operand.
                        Expr::Not(..) => format!("{sign}({})", e.text()),
                        _ => format!("{sign}{}", e.text()),
                    }
                }
                Expr::And(a, b) => format!("({} AND {})", a.text(), b.text()),
                Expr::Or(a, b) => format!("({} OR {})", a.text(), b.text()),
            }
        }

        fn holds(&self, zone: u64, user: u64, word: u64) -> bool {
            match self {
                Expr::Zone(z) => zone == *z,
                Expr::User(u) => user == *u,
                Expr::Word(w) => word == *w,
                Expr::Not(e, _) => !e.holds(zone, user, word),
                Expr::And(a, b) => a.holds(zone, user, word) && b.holds(zone, user, word),
                Expr::Or(a, b) => a.holds(zone, user, word) || b.holds(zone, user, word),
            }
        }
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf =
            prop_oneof![(0..3u64).prop_map(Expr::Zone), (0..3u64).prop_map(Expr::User), (0..3u64).prop_map(Expr::Word)];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), any::<bool>()).prop_map(|(e, dash)| Expr::Not(Box::new(e), dash)),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            ]
        })
    }

    #[test]
    fn any_query_of_and_or_and_not_matches_what_it_means() {
        let (_dir, s) = plant();
        TestRunner::new(Config { cases: 512, ..Config::default() })
            .run(&expr(), |e| {
                let q = e.text();
                prop_assert_eq!(matches(&s, &q), events(|z, u, w| e.holds(z, u, w)), "{}", q);
                Ok(())
            })
            .expect("every query matches what it means");
    }
}
