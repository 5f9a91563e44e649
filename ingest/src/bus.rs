//! The bus between pipeline stages: typed topics of record batches.
//!
//! Stages see only [`Publisher`] and [`Subscriber`]; the embedded bus (bounded
//! in-process channels, the default) and the Kafka bus implement them. Every
//! channel is bounded: a full topic makes `publish` wait (backpressure), and
//! `try_publish` hands the batch back so sources without backpressure (UDP)
//! can count the drop.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::mpsc;

use crate::record::{Ingested, Normalized, RawRecord};

#[cfg(feature = "kafka")]
pub mod kafka;

/// A bus failure; the message names the topic.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("topic {0} is closed")]
    Closed(&'static str),
    #[error("topic {0} already has a subscriber on the embedded bus")]
    AlreadySubscribed(&'static str),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("bus kind kafka: this build has no Kafka support (build with the `kafka` feature)")]
    NoKafka,
}

/// What may travel on the bus: serialisable, so a networked bus can carry it.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// The partition key: records with one key stay in order on one partition.
    fn key(&self) -> Option<&str> {
        None
    }
}

impl Message for RawRecord {
    /// Raw records keep their source's order.
    fn key(&self) -> Option<&str> {
        Some(&self.source)
    }
}

impl Message for crate::DeadLetter {
    fn key(&self) -> Option<&str> {
        Some(&self.source)
    }
}

impl Message for Ingested {
    /// Events are keyed by zone, so everything that can correlate shares a partition.
    fn key(&self) -> Option<&str> {
        match &self.record {
            Normalized::Event(e) => e.zone.as_deref().or(Some(&e.metadata.source)),
            Normalized::DeadLetter(d) => Some(&d.source),
        }
    }
}

/// A typed topic name.
pub struct Topic<T> {
    pub name: &'static str,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Topic<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Topic<T> {}

impl<T> Topic<T> {
    pub const fn new(name: &'static str) -> Self {
        Self { name, _t: PhantomData }
    }
}

/// Raw records from the sources.
pub const RAW: Topic<RawRecord> = Topic::new("custos.raw");
/// Normalised, enriched events and dead letters.
pub const EVENTS: Topic<Ingested> = Topic::new("custos.events");
/// Dead letters alone, for operators' own tooling on a Kafka bus (they also
/// travel on the events topic, to be ledgered).
pub const DEADLETTERS: Topic<crate::DeadLetter> = Topic::new("custos.deadletter");
/// Collectors' heartbeats, read by the core (see [`crate::heartbeat`]).
pub const STATUS: Topic<crate::heartbeat::Heartbeat> = Topic::new("custos.status");

/// How long a Kafka publish tries to deliver before it fails
/// (`message.timeout.ms`; a collector's readiness allows for it).
pub const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The sending side of one topic implementation.
pub trait PublishBatch<T>: Send + Sync {
    fn publish(&self, batch: Vec<T>) -> BoxFuture<'_, Result<(), BusError>>;
    /// Publishes without waiting; a full topic hands the batch back.
    fn try_publish(&self, batch: Vec<T>) -> Result<(), Vec<T>>;
}

/// The receiving side of one topic implementation.
pub trait ReceiveBatch<T>: Send {
    fn next(&mut self) -> BoxFuture<'_, Option<Delivery<T>>>;
}

/// Publishes batches to a topic. Cheap to clone.
pub struct Publisher<T>(Arc<dyn PublishBatch<T>>);

impl<T> Clone for Publisher<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Publisher<T> {
    pub fn new(inner: Arc<dyn PublishBatch<T>>) -> Self {
        Self(inner)
    }
    pub async fn publish(&self, batch: Vec<T>) -> Result<(), BusError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.0.publish(batch).await
    }
    pub fn try_publish(&self, batch: Vec<T>) -> Result<(), Vec<T>> {
        self.0.try_publish(batch)
    }
}

/// Receives batches from a topic.
pub struct Subscriber<T>(Box<dyn ReceiveBatch<T>>);

impl<T> Subscriber<T> {
    pub fn new(inner: Box<dyn ReceiveBatch<T>>) -> Self {
        Self(inner)
    }
    /// The next batch; `None` once every publisher is gone and the topic is drained.
    pub async fn next(&mut self) -> Option<Delivery<T>> {
        self.0.next().await
    }
}

/// A received batch. [`Delivery::commit`] tells the bus that what the batch
/// carried is durable downstream (for Kafka: commit the offsets).
pub struct Delivery<T> {
    pub items: Vec<T>,
    commit: Option<Box<dyn FnOnce() + Send>>,
}

impl<T> Delivery<T> {
    pub fn new(items: Vec<T>, commit: Option<Box<dyn FnOnce() + Send>>) -> Self {
        Self { items, commit }
    }
    /// Splits off the commit handle to call once the items are durable.
    pub fn into_parts(self) -> (Vec<T>, Commit) {
        (self.items, Commit(self.commit))
    }
}

/// Acknowledges a delivery once its items are durable.
pub struct Commit(Option<Box<dyn FnOnce() + Send>>);

impl Commit {
    pub fn commit(self) {
        if let Some(f) = self.0 {
            f();
        }
    }
}

/// A bus: hands out publishers and subscribers by topic.
pub trait Bus: Send + Sync + 'static {
    fn publisher<T: Message>(&self, topic: Topic<T>) -> Result<Publisher<T>, BusError>;
    fn subscriber<T: Message>(&self, topic: Topic<T>) -> Result<Subscriber<T>, BusError>;
}

struct Channel<T> {
    tx: mpsc::Sender<Vec<T>>,
    rx: Mutex<Option<mpsc::Receiver<Vec<T>>>>,
}

/// The default bus: one bounded in-process channel per topic, one subscriber each.
pub struct EmbeddedBus {
    capacity: usize,
    topics: Mutex<HashMap<&'static str, Box<dyn Any + Send>>>,
}

impl EmbeddedBus {
    /// `capacity` is the number of batches a topic holds before publishers wait.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), topics: Mutex::new(HashMap::new()) }
    }

    fn channel<T: Message>(&self, topic: Topic<T>) -> Arc<Channel<T>> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let entry = topics.entry(topic.name).or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<Vec<T>>(self.capacity);
            Box::new(Arc::new(Channel { tx, rx: Mutex::new(Some(rx)) })) as Box<dyn Any + Send>
        });
        match entry.downcast_ref::<Arc<Channel<T>>>() {
            Some(ch) => ch.clone(),
            // A topic name is bound to one type by its `Topic<T>` constant.
            None => unreachable!("topic {} used with two message types", topic.name),
        }
    }
}

struct EmbeddedPublisher<T> {
    name: &'static str,
    tx: mpsc::Sender<Vec<T>>,
}

impl<T: Message> PublishBatch<T> for EmbeddedPublisher<T> {
    fn publish(&self, batch: Vec<T>) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move { self.tx.send(batch).await.map_err(|_| BusError::Closed(self.name)) })
    }
    fn try_publish(&self, batch: Vec<T>) -> Result<(), Vec<T>> {
        self.tx.try_send(batch).map_err(|e| match e {
            mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b,
        })
    }
}

struct EmbeddedSubscriber<T>(mpsc::Receiver<Vec<T>>);

impl<T: Message> ReceiveBatch<T> for EmbeddedSubscriber<T> {
    fn next(&mut self) -> BoxFuture<'_, Option<Delivery<T>>> {
        Box::pin(async move { self.0.recv().await.map(|items| Delivery::new(items, None)) })
    }
}

impl Bus for EmbeddedBus {
    fn publisher<T: Message>(&self, topic: Topic<T>) -> Result<Publisher<T>, BusError> {
        let ch = self.channel(topic);
        Ok(Publisher::new(Arc::new(EmbeddedPublisher { name: topic.name, tx: ch.tx.clone() })))
    }

    fn subscriber<T: Message>(&self, topic: Topic<T>) -> Result<Subscriber<T>, BusError> {
        let ch = self.channel(topic);
        let rx =
            ch.rx.lock().unwrap_or_else(|e| e.into_inner()).take().ok_or(BusError::AlreadySubscribed(topic.name))?;
        // The bus keeps no sender of its own once subscribed publishers exist, so
        // the topic closes when the last publisher is dropped.
        Ok(Subscriber::new(Box::new(EmbeddedSubscriber(rx))))
    }
}

/// Kafka settings, `[bus.kafka]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, e.g. `kafka-1:9092,kafka-2:9092`.
    pub brokers: String,
    /// Topic names are `<prefix>.raw`, `<prefix>.events`. Default `custos`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Consumer group prefix; each stage adds its topic. Default `custos`.
    #[serde(default = "default_prefix")]
    pub group: String,
    /// Partitions for topics Custos creates. Default 6.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor for topics Custos creates. Default 1.
    #[serde(default = "default_replication")]
    pub replication: i32,
    /// Further librdkafka properties (TLS, SASL ...), passed as they are.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

fn default_prefix() -> String {
    "custos".into()
}
fn default_partitions() -> i32 {
    6
}
fn default_replication() -> i32 {
    1
}

/// The bus a deployment runs on.
pub enum AnyBus {
    Embedded(EmbeddedBus),
    #[cfg(feature = "kafka")]
    Kafka(kafka::KafkaBus),
}

impl AnyBus {
    /// Whether topics outlive the process (Kafka): then stages stop on a signal
    /// instead of draining until their input closes.
    pub fn is_durable(&self) -> bool {
        !matches!(self, Self::Embedded(_))
    }
}

impl Bus for AnyBus {
    fn publisher<T: Message>(&self, topic: Topic<T>) -> Result<Publisher<T>, BusError> {
        match self {
            Self::Embedded(b) => b.publisher(topic),
            #[cfg(feature = "kafka")]
            Self::Kafka(b) => b.publisher(topic),
        }
    }
    fn subscriber<T: Message>(&self, topic: Topic<T>) -> Result<Subscriber<T>, BusError> {
        match self {
            Self::Embedded(b) => b.subscriber(topic),
            #[cfg(feature = "kafka")]
            Self::Kafka(b) => b.subscriber(topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Message for u32 {}

    const T: Topic<u32> = Topic::new("t");

    #[tokio::test]
    async fn bounded_and_single_subscriber() {
        let bus = EmbeddedBus::new(1);
        let p = bus.publisher(T).expect("publisher");
        let mut s = bus.subscriber(T).expect("subscriber");
        assert!(matches!(bus.subscriber(T), Err(BusError::AlreadySubscribed("t"))));
        p.publish(vec![1, 2]).await.expect("room for one batch");
        assert_eq!(p.try_publish(vec![3]), Err(vec![3]), "a full topic hands the batch back");
        let (items, commit) = s.next().await.expect("batch").into_parts();
        commit.commit();
        assert_eq!(items, vec![1, 2]);
    }
}
