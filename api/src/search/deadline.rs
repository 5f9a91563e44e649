//! A search's time limit. tantivy has none: a search walks its segments to
//! the end. A query wrapped here ends its document streams once the deadline
//! has passed (checked every 1,024 documents and at every segment), and the
//! deadline remembers that it cut the search short.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tantivy::query::{EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{COLLECT_BLOCK_BUFFER_LEN, DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

/// Documents a stream yields between two looks at the clock.
const STEPS_PER_LOOK: u32 = 1024;

#[derive(Debug, Clone)]
pub(super) struct Deadline {
    at: Instant,
    passed: Arc<AtomicBool>,
}

impl Deadline {
    pub(super) fn at(at: Instant) -> Self {
        Self { at, passed: Arc::default() }
    }

    /// Whether a stream has seen the deadline pass (the search is incomplete).
    pub(super) fn cut_short(&self) -> bool {
        self.passed.load(Ordering::Relaxed)
    }

    fn look(&self) -> bool {
        if self.cut_short() || Instant::now() >= self.at {
            self.passed.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// `query`, stopping at this deadline.
    pub(super) fn bound(&self, query: Box<dyn Query>) -> Box<dyn Query> {
        Box::new(Bounded { inner: query, deadline: self.clone() })
    }
}

#[derive(Debug)]
struct Bounded {
    inner: Box<dyn Query>,
    deadline: Deadline,
}

impl Clone for Bounded {
    fn clone(&self) -> Self {
        Self { inner: self.inner.box_clone(), deadline: self.deadline.clone() }
    }
}

impl Query for Bounded {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(BoundedWeight { inner: self.inner.weight(scoring)?, deadline: self.deadline.clone() }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        self.inner.query_terms(visitor);
    }
}

struct BoundedWeight {
    inner: Box<dyn Weight>,
    deadline: Deadline,
}

impl Weight for BoundedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        // Opening a segment's stream can itself be long (a prefix walks terms).
        if self.deadline.look() {
            return Ok(Box::new(EmptyScorer));
        }
        let inner = self.inner.scorer(reader, boost)?;
        Ok(Box::new(BoundedScorer { inner, deadline: self.deadline.clone(), steps: 0, stopped: false }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.inner.explain(reader, doc)
    }
}

struct BoundedScorer {
    inner: Box<dyn Scorer>,
    deadline: Deadline,
    steps: u32,
    stopped: bool,
}

impl BoundedScorer {
    /// Counts `n` documents; true once the stream has stopped.
    fn step(&mut self, n: u32) -> bool {
        self.steps += n;
        if self.steps >= STEPS_PER_LOOK {
            self.steps = 0;
            self.stopped |= self.deadline.look();
        }
        self.stopped
    }
}

impl DocSet for BoundedScorer {
    fn advance(&mut self) -> DocId {
        if self.step(1) { TERMINATED } else { self.inner.advance() }
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.step(1) { TERMINATED } else { self.inner.seek(target) }
    }

    /// Collectors take documents a block at a time: the inner stream's own
    /// block reading is much faster than one `advance` per document.
    fn fill_buffer(&mut self, buffer: &mut [DocId; COLLECT_BLOCK_BUFFER_LEN]) -> usize {
        if self.step(COLLECT_BLOCK_BUFFER_LEN as u32) { 0 } else { self.inner.fill_buffer(buffer) }
    }

    fn doc(&self) -> DocId {
        if self.stopped { TERMINATED } else { self.inner.doc() }
    }

    fn size_hint(&self) -> u32 {
        self.inner.size_hint()
    }

    fn cost(&self) -> u64 {
        self.inner.cost()
    }
}

impl Scorer for BoundedScorer {
    fn score(&mut self) -> Score {
        self.inner.score()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tantivy::query::AllScorer;

    use super::*;

    fn stream(deadline: &Deadline) -> BoundedScorer {
        BoundedScorer { inner: Box::new(AllScorer::new(10_000)), deadline: deadline.clone(), steps: 0, stopped: false }
    }

    #[test]
    fn a_stream_ends_at_its_first_look_after_the_deadline() {
        let deadline = Deadline::at(Instant::now() + Duration::from_secs(3600));
        let mut s = stream(&deadline);
        let mut block = [0; COLLECT_BLOCK_BUFFER_LEN];
        assert_eq!(s.fill_buffer(&mut block), COLLECT_BLOCK_BUFFER_LEN);
        let blocked = COLLECT_BLOCK_BUFFER_LEN as u32;
        assert_eq!(s.doc(), blocked);
        for _ in 0..STEPS_PER_LOOK - blocked - 2 {
            assert_ne!(s.advance(), TERMINATED);
        }
        // Another stream of the same search saw the deadline pass.
        deadline.passed.store(true, Ordering::Relaxed);
        assert_eq!(s.advance(), STEPS_PER_LOOK - 1, "no look between two looks");
        assert_eq!(s.advance(), TERMINATED, "the next look ends the stream");
        assert_eq!((s.doc(), s.seek(9_999), s.advance()), (TERMINATED, TERMINATED, TERMINATED));
        assert!(deadline.cut_short());
    }

    #[test]
    fn a_stream_that_never_meets_its_deadline_yields_every_document() {
        let deadline = Deadline::at(Instant::now() + Duration::from_secs(3600));
        let mut s = stream(&deadline);
        let (mut n, mut block) = (0, [0; COLLECT_BLOCK_BUFFER_LEN]);
        loop {
            match s.fill_buffer(&mut block) {
                0 => break,
                got => n += got,
            }
        }
        assert_eq!((n, deadline.cut_short()), (10_000, false));
    }
}
