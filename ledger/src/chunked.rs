//! An append-only list whose full chunks are shared by its clones, so a
//! snapshot of the tree's stored hashes for an export costs a pointer per
//! 4,096 entries instead of a copy of every hash (at a hundred million
//! records, some 320 MB).

use std::ops::Index;
use std::sync::Arc;

const CHUNK: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) struct Chunked<T> {
    full: Vec<Arc<[T]>>,
    /// The entries after the full chunks; never empty once one was pushed,
    /// so the last entry can still change.
    tail: Vec<T>,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self { full: Vec::new(), tail: Vec::new() }
    }
}

impl<T> Chunked<T> {
    pub(crate) fn push(&mut self, entry: T) {
        if self.tail.len() == CHUNK {
            let full = std::mem::replace(&mut self.tail, Vec::with_capacity(CHUNK));
            self.full.push(full.into());
        }
        self.tail.push(entry);
    }

    pub(crate) fn last_mut(&mut self) -> Option<&mut T> {
        self.tail.last_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.full.iter().flat_map(|chunk| chunk.iter()).chain(&self.tail)
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        match self.full.get(i / CHUNK) {
            Some(chunk) => &chunk[i % CHUNK],
            None => &self.tail[i - self.full.len() * CHUNK],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_full_chunks_and_keep_their_own_entries() {
        let mut list = Chunked::default();
        for i in 0..3 * CHUNK + 5 {
            list.push(i);
        }
        let snapshot = list.clone();
        assert!(Arc::ptr_eq(&list.full[2], &snapshot.full[2]), "full chunks are shared, not copied");
        *list.last_mut().expect("last") = 0;
        list.push(7);
        assert_eq!((snapshot.iter().count(), snapshot[3 * CHUNK + 4]), (3 * CHUNK + 5, 3 * CHUNK + 4));
        assert_eq!((list.iter().count(), list[3 * CHUNK + 4], list[3 * CHUNK + 5]), (3 * CHUNK + 6, 0, 7));
        assert!(snapshot.iter().copied().eq(0..3 * CHUNK + 5));
        assert_eq!(list[CHUNK - 1] + 1, list[CHUNK]);
    }
}
