//! The Kafka bus. Each record is one JSON message keyed by [`Message::key`]
//! (zone for events). The producer is idempotent with `acks=all`: `publish`
//! resolves once the brokers have every record. Consumers never auto-commit:
//! a batch's offsets are committed by [`super::Delivery`]'s commit, which the
//! stage calls only once what the batch carried is durable downstream.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::{
    BoxFuture, Bus, BusError, Delivery, KafkaConfig, Message, PublishBatch, Publisher, ReceiveBatch, Subscriber, Topic,
};

const MAX_BATCH: usize = 1024;

fn kafka_err(e: impl std::fmt::Display) -> BusError {
    BusError::Kafka(e.to_string())
}

pub struct KafkaBus {
    cfg: KafkaConfig,
    producer: FutureProducer,
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
    pub async fn connect(cfg: KafkaConfig, topics: &[&str]) -> Result<Self, BusError> {
        let mut pc = base_config(&cfg);
        pc.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", super::DELIVERY_TIMEOUT.as_millis().to_string());
        let producer: FutureProducer = pc.create().map_err(kafka_err)?;
        let bus = Self { cfg, producer };
        let admin: AdminClient<DefaultClientContext> = bus.client_config().create().map_err(kafka_err)?;
        let names: Vec<String> = topics
            .iter()
            .map(|t| format!("{}{}", bus.cfg.topic_prefix, t.strip_prefix("custos").unwrap_or(t)))
            .collect();
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| NewTopic::new(n, bus.cfg.partitions, TopicReplication::Fixed(bus.cfg.replication)))
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
    producer: FutureProducer,
    topic: String,
    _t: PhantomData<fn(T)>,
}

impl<T: Message> KafkaPublisher<T> {
    /// Enqueues items from `batch` until the producer queue is full; returns the
    /// delivery futures and the items not taken.
    fn enqueue(
        &self,
        batch: Vec<T>,
        wait_for_room: bool,
    ) -> Result<(Vec<rdkafka::producer::DeliveryFuture>, Vec<T>), BusError> {
        let mut pending = Vec::with_capacity(batch.len());
        let mut it = batch.into_iter();
        while let Some(item) = it.next() {
            let payload =
                serde_json::to_vec(&item).map_err(|e| BusError::Kafka(format!("encode for {}: {e}", self.topic)))?;
            let mut rec = FutureRecord::to(&self.topic).payload(&payload);
            if let Some(k) = item.key() {
                rec = rec.key(k);
            }
            loop {
                match self.producer.send_result(rec) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) if wait_for_room => {
                        // Let librdkafka deliver what is queued, then try again.
                        self.producer.poll(Duration::from_millis(10));
                        rec = back;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        let mut rest = vec![item];
                        rest.extend(it);
                        return Ok((pending, rest));
                    }
                    Err((e, _)) => return Err(kafka_err(e)),
                }
            }
        }
        Ok((pending, Vec::new()))
    }
}

impl<T: Message> PublishBatch<T> for KafkaPublisher<T> {
    fn publish(&self, batch: Vec<T>) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let (pending, _) = self.enqueue(batch, true)?;
            for f in pending {
                match f.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(kafka_err(e)),
                    Err(_) => return Err(BusError::Kafka(format!("delivery to {} was cancelled", self.topic))),
                }
            }
            Ok(())
        })
    }

    fn try_publish(&self, batch: Vec<T>) -> Result<(), Vec<T>> {
        match self.enqueue(batch, false) {
            Ok((_, rest)) if rest.is_empty() => Ok(()),
            Ok((_, rest)) => Err(rest),
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
            _t: PhantomData,
        })))
    }

    fn subscriber<T: Message>(&self, topic: Topic<T>) -> Result<Subscriber<T>, BusError> {
        let name = self.topic_name(topic);
        let mut cc = self.client_config();
        cc.set("group.id", format!("{}.{}", self.cfg.group, name))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        let consumer: StreamConsumer = cc.create().map_err(kafka_err)?;
        consumer.subscribe(&[&name]).map_err(kafka_err)?;
        Ok(Subscriber::new(Box::new(KafkaSubscriber { consumer: Arc::new(consumer), topic: name, _t: PhantomData })))
    }
}
