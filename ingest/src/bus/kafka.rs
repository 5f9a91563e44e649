//! The Kafka bus. Each record is one JSON message keyed by [`Message::key`]
//! (zone for events). The producer is idempotent with `acks=all`: `publish`
//! resolves once the brokers have every record. Consumers never auto-commit:
//! a batch's offsets are committed by [`super::Delivery`]'s commit, which the
//! stage calls only once what the batch carried is durable downstream.
//!
//! A broker that takes nothing for the delivery timeout (down, or frozen)
//! stalls the stages, it does not stop them: each record it did not take is
//! sent again, and counted, until it is taken or the process is stopping.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{
    BoxFuture, Bus, BusError, Delivery, KafkaConfig, Message, PublishBatch, Publisher, ReceiveBatch, Subscriber, Topic,
};

const MAX_BATCH: usize = 1024;

fn kafka_err(e: impl std::fmt::Display) -> BusError {
    BusError::Kafka(e.to_string())
}

pub struct KafkaBus {
    cfg: KafkaConfig,
    producer: Arc<Producer>,
    redelivery: Redelivery,
    /// The largest message, in bytes, producers send and consumers take.
    max_message: usize,
}

/// librdkafka's own default for `message.max.bytes`.
const KAFKA_MAX_MESSAGE: usize = 1_000_000;

/// The largest message for records of up to `largest` bytes: room for the
/// JSON escapes of their bytes, and for an event's parsed fields beside
/// them, at least librdkafka's default and at most its limit.
pub fn max_message_for(largest: usize) -> usize {
    largest.saturating_mul(8).saturating_add(64 * 1024).clamp(KAFKA_MAX_MESSAGE, 1_000_000_000)
}

/// What publishers do with records the brokers did not take within the
/// delivery timeout: send them again, counting them, until `stopping`.
#[derive(Clone)]
pub struct Redelivery {
    /// Records sent again (`custos_bus_redelivered_total`).
    pub count: Arc<AtomicU64>,
    /// Once true, a record not taken fails its batch instead: the batch is
    /// not committed, so the next start reads it again.
    pub stopping: watch::Receiver<bool>,
}

/// The idempotent producer every publisher shares, replaced when it fails
/// for good: after a delivery timeout a broker may fence it (the idempotent
/// producer's epoch), and a fenced producer sends nothing ever again.
struct Producer {
    config: ClientConfig,
    /// The producer, and how many have gone before it.
    current: std::sync::Mutex<(u64, FutureProducer)>,
}

impl Producer {
    fn new(config: ClientConfig) -> Result<Self, BusError> {
        let first = config.create().map_err(kafka_err)?;
        Ok(Self { config, current: std::sync::Mutex::new((0, first)) })
    }

    fn current(&self) -> (u64, FutureProducer) {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces producer `generation` (unless another publisher already
    /// did), then waits a second: a broker that failed each new producer at
    /// once would otherwise have them made in a tight loop.
    async fn renew(&self, generation: u64, why: &str) -> Result<(), BusError> {
        {
            let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.0 == generation {
                *current = (generation + 1, self.config.create().map_err(kafka_err)?);
                tracing::warn!(
                    why,
                    generation = generation + 1,
                    "the kafka producer failed for good; a new one takes over"
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    }
}

/// Why a producer is of no more use, if it is not.
fn failed_for_good(producer: &FutureProducer, e: &KafkaError) -> Option<String> {
    use rdkafka::producer::Producer as _;
    if let Some(fatal) = producer.client().fatal_error() {
        return Some(fatal.1);
    }
    matches!(e, KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced)).then(|| e.to_string())
}

impl KafkaBus {
    fn client_config(&self) -> ClientConfig {
        base_config(&self.cfg)
    }

    /// The Kafka topic name of a bus topic: `custos.raw` → `<prefix>.raw`.
    pub fn topic_name<T>(&self, topic: Topic<T>) -> String {
        let suffix = topic.name.strip_prefix("custos").unwrap_or(topic.name);
        format!("{}{suffix}", self.cfg.topic_prefix)
    }

    /// Connects, and creates the bus topics when they do not exist yet.
    /// Sources make records of up to `largest_record` bytes: messages (and
    /// the topics Custos creates) take them, unless `properties` set
    /// `message.max.bytes` otherwise.
    pub async fn connect(
        cfg: KafkaConfig,
        topics: &[&str],
        redelivery: Redelivery,
        largest_record: usize,
    ) -> Result<Self, BusError> {
        let max_message = match cfg.properties.get("message.max.bytes") {
            Some(v) => v.parse().map_err(|_| BusError::Kafka(format!("message.max.bytes {v:?} is not a number")))?,
            None => max_message_for(largest_record),
        };
        let mut pc = base_config(&cfg);
        pc.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.max.bytes", max_message.to_string())
            .set("message.timeout.ms", super::DELIVERY_TIMEOUT.as_millis().to_string());
        let bus = Self { cfg, producer: Arc::new(Producer::new(pc)?), redelivery, max_message };
        let admin: AdminClient<DefaultClientContext> = bus.client_config().create().map_err(kafka_err)?;
        let names: Vec<String> = topics
            .iter()
            .map(|t| format!("{}{}", bus.cfg.topic_prefix, t.strip_prefix("custos").unwrap_or(t)))
            .collect();
        let max_message = bus.max_message.to_string();
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| {
                NewTopic::new(n, bus.cfg.partitions, TopicReplication::Fixed(bus.cfg.replication))
                    .set("max.message.bytes", &max_message)
            })
            .collect();
        let results = admin
            .create_topics(new.iter(), &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))))
            .await
            .map_err(kafka_err)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(BusError::Kafka(format!("create topic {topic}: {code}"))),
            }
        }
        Ok(bus)
    }
}

fn base_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (k, v) in &cfg.properties {
        c.set(k, v);
    }
    c
}

struct KafkaPublisher<T> {
    producer: Arc<Producer>,
    topic: String,
    redelivery: Redelivery,
    _t: PhantomData<fn(T)>,
}

/// A record as sent: its key and JSON bytes, kept until the brokers take it.
struct Encoded {
    key: Option<String>,
    payload: Vec<u8>,
}

impl<T: Message> KafkaPublisher<T> {
    fn encode(&self, item: &T) -> Result<Encoded, BusError> {
        let payload =
            serde_json::to_vec(item).map_err(|e| BusError::Kafka(format!("encode for {}: {e}", self.topic)))?;
        Ok(Encoded { key: item.key().map(str::to_owned), payload })
    }

    /// Enqueues items from `batch` until the producer queue is full; returns
    /// the items not taken. (For loss-tolerant senders: nothing is awaited.)
    fn enqueue_now(&self, batch: Vec<T>) -> Result<Vec<T>, BusError> {
        let (_, producer) = self.producer.current();
        let mut it = batch.into_iter();
        while let Some(item) = it.next() {
            let e = self.encode(&item)?;
            match producer.send_result(record(&self.topic, &e)) {
                Ok(_) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let mut rest = vec![item];
                    rest.extend(it);
                    return Ok(rest);
                }
                Err((e, _)) => return Err(kafka_err(e)),
            }
        }
        Ok(Vec::new())
    }

    /// Enqueues every record on `producer`, waiting for room in its queue.
    fn enqueue(&self, producer: &FutureProducer, records: &[Encoded]) -> Result<Vec<DeliveryFuture>, KafkaError> {
        let mut pending = Vec::with_capacity(records.len());
        for e in records {
            let mut rec = record(&self.topic, e);
            loop {
                match producer.send_result(rec) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // Let librdkafka deliver what is queued, then try again.
                        producer.poll(Duration::from_millis(10));
                        rec = back;
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        Ok(pending)
    }
}

fn record<'a>(topic: &'a str, e: &'a Encoded) -> FutureRecord<'a, str, [u8]> {
    let rec = FutureRecord::to(topic).payload(e.payload.as_slice());
    match &e.key {
        Some(k) => rec.key(k.as_str()),
        None => rec,
    }
}

impl<T: Message> PublishBatch<T> for KafkaPublisher<T> {
    /// Resolves once the brokers have every record. What they did not take
    /// in the delivery timeout is sent again (on a new producer when this
    /// one failed for good) until taken, or until the process is stopping.
    fn publish(&self, batch: Vec<T>) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let mut records = batch.iter().map(|i| self.encode(i)).collect::<Result<Vec<_>, _>>()?;
            drop(batch);
            loop {
                let stopping = || *self.redelivery.stopping.borrow();
                let (generation, producer) = self.producer.current();
                let pending = match self.enqueue(&producer, &records) {
                    Ok(p) => p,
                    Err(e) => match failed_for_good(&producer, &e) {
                        Some(why) if !stopping() => {
                            self.producer.renew(generation, &why).await?;
                            continue;
                        }
                        _ => return Err(kafka_err(e)),
                    },
                };
                let mut taken = vec![true; records.len()];
                let mut renew = None;
                for (i, f) in pending.into_iter().enumerate() {
                    match f.await {
                        Ok(Ok(_)) => {}
                        Ok(Err((e, _))) if !stopping() => {
                            let why = failed_for_good(&producer, &e);
                            let timed_out =
                                matches!(e, KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut));
                            if why.is_none() && !timed_out {
                                return Err(kafka_err(e));
                            }
                            taken[i] = false;
                            renew = renew.or(why);
                        }
                        Ok(Err((e, _))) => return Err(kafka_err(e)),
                        Err(_) => return Err(BusError::Kafka(format!("delivery to {} was cancelled", self.topic))),
                    }
                }
                let mut taken = taken.into_iter();
                records.retain(|_| !taken.next().unwrap_or(true));
                if records.is_empty() {
                    return Ok(());
                }
                self.redelivery.count.fetch_add(records.len() as u64, Ordering::Relaxed);
                tracing::warn!(
                    topic = %self.topic,
                    records = records.len(),
                    timeout_s = super::DELIVERY_TIMEOUT.as_secs(),
                    "the brokers did not take these records; sending them again"
                );
                if let Some(why) = renew {
                    self.producer.renew(generation, &why).await?;
                }
            }
        })
    }

    fn try_publish(&self, batch: Vec<T>) -> Result<(), Vec<T>> {
        match self.enqueue_now(batch) {
            Ok(rest) if rest.is_empty() => Ok(()),
            Ok(rest) => Err(rest),
            Err(e) => {
                tracing::warn!(error = %e, "kafka publish failed");
                Err(Vec::new())
            }
        }
    }
}

struct KafkaSubscriber<T> {
    consumer: Arc<StreamConsumer>,
    topic: String,
    _t: PhantomData<fn() -> T>,
}

impl<T: Message> ReceiveBatch<T> for KafkaSubscriber<T> {
    fn next(&mut self) -> BoxFuture<'_, Option<Delivery<T>>> {
        Box::pin(async move {
            let mut items = Vec::new();
            let mut offsets: HashMap<i32, i64> = HashMap::new();
            // Wait for the first message, then take what is already there.
            let mut waited = false;
            while items.len() < MAX_BATCH {
                let msg = if waited {
                    match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                        Ok(m) => m,
                        Err(_) => break,
                    }
                } else {
                    waited = true;
                    self.consumer.recv().await
                };
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(topic = %self.topic, error = %e, "kafka receive failed");
                        if offsets.is_empty() {
                            // A broker that is down answers at once: back off rather than spin.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            waited = false;
                            continue;
                        }
                        break;
                    }
                };
                let next = offsets.entry(msg.partition()).or_default();
                *next = (*next).max(msg.offset() + 1);
                match msg.payload().map(serde_json::from_slice::<T>) {
                    Some(Ok(item)) => items.push(item),
                    // Not ours to read (another writer on the topic): skip it, visibly.
                    other => {
                        tracing::error!(topic = %self.topic, partition = msg.partition(), offset = msg.offset(), error = ?other.and_then(Result::err).map(|e| e.to_string()), "unreadable message skipped")
                    }
                }
            }
            let mut tpl = TopicPartitionList::new();
            for (partition, offset) in offsets {
                if let Err(e) = tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset)) {
                    tracing::warn!(error = %e, "bad offset");
                }
            }
            let consumer = self.consumer.clone();
            let commit: Box<dyn FnOnce() + Send> = Box::new(move || {
                if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "kafka offset commit failed; the batch will be read again after a restart");
                }
            });
            Some(Delivery::new(items, Some(commit)))
        })
    }
}

impl Bus for KafkaBus {
    fn publisher<T: Message>(&self, topic: Topic<T>) -> Result<Publisher<T>, BusError> {
        Ok(Publisher::new(Arc::new(KafkaPublisher {
            producer: self.producer.clone(),
            topic: self.topic_name(topic),
            redelivery: self.redelivery.clone(),
            _t: PhantomData,
        })))
    }

    fn subscriber<T: Message>(&self, topic: Topic<T>) -> Result<Subscriber<T>, BusError> {
        let name = self.topic_name(topic);
        let mut cc = self.client_config();
        // Room to fetch the largest message (librdkafka wants the receive
        // limit above the fetch limit).
        let set_by_hand =
            ["fetch.max.bytes", "receive.message.max.bytes"].iter().any(|k| self.cfg.properties.contains_key(*k));
        if !set_by_hand {
            let fetch = self.max_message.max(52_428_800);
            cc.set("fetch.max.bytes", fetch.to_string())
                .set("receive.message.max.bytes", (fetch + 1_048_576).to_string());
        }
        cc.set("group.id", format!("{}.{}", self.cfg.group, name))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        let consumer: StreamConsumer = cc.create().map_err(kafka_err)?;
        consumer.subscribe(&[&name]).map_err(kafka_err)?;
        Ok(Subscriber::new(Box::new(KafkaSubscriber { consumer: Arc::new(consumer), topic: name, _t: PhantomData })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message has room for its record eight times over, never less than
    /// librdkafka's default, never more than its limit.
    #[test]
    fn the_largest_message_follows_the_largest_record() {
        assert_eq!(max_message_for(65_535), KAFKA_MAX_MESSAGE);
        assert_eq!(max_message_for(1 << 20), (8 << 20) + 65_536);
        assert_eq!(max_message_for(usize::MAX), 1_000_000_000);
    }
}
