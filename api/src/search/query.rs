//! What a query means: tantivy's Lucene-like grammar, with its limits, and
//! with exclusions meaning "everything but".
//!
//! tantivy reads `a AND NOT b` as `a AND (NOT b)`, and `a OR NOT b` as
//! `a OR (NOT b)`; a group of nothing but exclusions matches no document in
//! tantivy, so both found nothing (and a query of exclusions only was
//! refused). A user means what Lucene's and Elasticsearch's users mean: a
//! group of exclusions is everything but them. The parsed query is rewritten
//! to say so before tantivy reads it.

use tantivy::query::{Occur, Query, QueryParser, QueryParserError};
use tantivy::query_grammar::{self, UserInputAst, UserInputLeaf};

use super::SearchError;

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
    let ast = query_grammar::parse_query(q).map_err(|_| QueryParserError::SyntaxError(q.to_owned()));
    ast.and_then(|ast| parser.build_query_from_user_input_ast(everything_but(ast))).map_err(|e| match e {
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

fn only_exclusions(clauses: &[(Option<Occur>, UserInputAst)]) -> bool {
    !clauses.is_empty() && clauses.iter().all(|(o, _)| *o == Some(Occur::MustNot))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use crate::search::{SearchIndex, SearchRequest, Searcher};

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
