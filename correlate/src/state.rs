//! Correlation state written to and read from the service's state
//! snapshots: maps go out as key-ordered pairs, so the same state always
//! writes the same bytes (which is what the exactness tests compare) and
//! keys need not be strings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `#[serde(with = "pairs")]` for a `HashMap` or `BTreeMap`.
pub(crate) mod pairs {
    use super::*;

    pub fn serialize<'a, M, K, V, S>(map: &'a M, s: S) -> Result<S::Ok, S::Error>
    where
        &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Ord + Serialize + 'a,
        V: Serialize + 'a,
        S: Serializer,
    {
        let mut entries: Vec<(&K, &V)> = map.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.collect_seq(entries)
    }

    pub fn deserialize<'de, M, K, V, D>(d: D) -> Result<M, D::Error>
    where
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// `#[serde(with = "pairs_each")]` for a list of maps, each as [`pairs`].
pub(crate) mod pairs_each {
    use super::*;

    pub fn serialize<M, K, V, S>(maps: &[M], s: S) -> Result<S::Ok, S::Error>
    where
        for<'a> &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Ord + Serialize,
        V: Serialize,
        S: Serializer,
    {
        s.collect_seq(maps.iter().map(Sorted))
    }

    pub fn deserialize<'de, M, K, V, D>(d: D) -> Result<Vec<M>, D::Error>
    where
        M: FromIterator<(K, V)>,
        K: Deserialize<'de>,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<Vec<(K, V)>>::deserialize(d)?.into_iter().map(|m| m.into_iter().collect()).collect())
    }

    /// One map, written as [`pairs`] writes it.
    struct Sorted<'m, M>(&'m M);

    impl<M, K, V> Serialize for Sorted<'_, M>
    where
        for<'a> &'a M: IntoIterator<Item = (&'a K, &'a V)>,
        K: Ord + Serialize,
        V: Serialize,
    {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            pairs::serialize(self.0, s)
        }
    }
}
