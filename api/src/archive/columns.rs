//! The events table's Arrow columns, appended straight from typed events:
//! events are nearly every record, and going through a JSON tree per row
//! cost more than the rest of the archive together.

use std::fmt::Write as _;
use std::net::IpAddr;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, ListBuilder, StringBuilder, TimestampMillisecondBuilder, UInt8Builder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use ingest::Event;
use ingest::event::{Endpoint, OtAccess};

use super::Table;

fn timestamps(rows: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC")
}

/// A text column for `rows` rows of short values (it grows if they are longer).
fn strings(rows: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * 16)
}

fn texts<const N: usize>(rows: usize) -> [StringBuilder; N] {
    std::array::from_fn(|_| strings(rows))
}

fn text(b: &mut StringBuilder, v: Option<&str>) {
    b.append_option(v);
}

fn ip(b: &mut StringBuilder, v: Option<IpAddr>) {
    match v {
        Some(IpAddr::V4(v4)) => {
            let mut text = [0; 15];
            b.append_value(dotted(v4, &mut text));
        }
        // Written into the column's buffer: no string per address.
        Some(ip) => {
            let _ = write!(b, "{ip}");
            b.append_value("");
        }
        None => b.append_null(),
    }
}

/// `v4` as dotted decimal in `text`, as `Display` writes it (nearly every
/// address is one, and `core::fmt` cost ~8% of the archive thread).
fn dotted(v4: std::net::Ipv4Addr, text: &mut [u8; 15]) -> &str {
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            text[len] = b'0' + d;
            len += 1;
        }
    }
    std::str::from_utf8(&text[..len]).unwrap_or_default()
}

fn list(b: &mut ListBuilder<StringBuilder>, v: Option<&[String]>) {
    match v {
        Some(items) if !items.is_empty() => {
            for i in items {
                b.values().append_value(i);
            }
            b.append(true);
        }
        _ => b.append(false),
    }
}

/// `ip, port, mac, hostname, asset, zone` of one side.
struct EndpointColumns {
    ip: StringBuilder,
    port: UInt16Builder,
    text: [StringBuilder; 4],
}

impl EndpointColumns {
    fn with_capacity(rows: usize) -> Self {
        Self { ip: strings(rows), port: UInt16Builder::with_capacity(rows), text: texts(rows) }
    }

    fn append(&mut self, e: Option<&Endpoint>) {
        ip(&mut self.ip, e.and_then(|e| e.ip));
        self.port.append_option(e.and_then(|e| e.port));
        let [mac, hostname, asset, zone] = &mut self.text;
        text(mac, e.and_then(|e| e.mac.as_deref()));
        text(hostname, e.and_then(|e| e.hostname.as_deref()));
        text(asset, e.and_then(|e| e.asset.as_deref()));
        text(zone, e.and_then(|e| e.zone.as_deref()));
    }

    fn finish(&mut self, take: &mut impl FnMut(&mut dyn ArrayBuilder)) {
        take(&mut self.ip);
        take(&mut self.port);
        self.text.iter_mut().for_each(|b| take(b));
    }
}

/// Rows after which a partition's columns are set aside and new ones, sized
/// for this many rows, are started.
const CHUNK_ROWS: usize = 8192;

/// Rows of the events table being built for one partition. Columns are built
/// in chunks of [`CHUNK_ROWS`]: one column grown to a whole flush (up to
/// 250,000 rows) was copied and freshly faulted in at every doubling, which
/// cost 29% of the archive thread's time.
#[derive(Default)]
pub struct EventColumns {
    full: Vec<Chunk>,
    building: Chunk,
}

impl EventColumns {
    /// Adds a row. `unmapped` is the event's vendor fields as JSON text when
    /// the caller has it (the follower takes it from the ledger); when `None`
    /// they are written from `e`.
    pub fn append(&mut self, index: u64, recorded_at: i64, e: &Event, unmapped: Option<&str>) {
        if self.building.ledger_index.len() >= CHUNK_ROWS {
            let next = Chunk::with_capacity(CHUNK_ROWS);
            self.full.push(std::mem::replace(&mut self.building, next));
        }
        self.building.append(index, recorded_at, e, unmapped);
    }

    /// The rows as batches of [`Table::Events`]' schema, oldest first.
    pub fn finish(self) -> Result<Vec<RecordBatch>, ArrowError> {
        self.full.into_iter().chain([self.building]).map(Chunk::finish).collect()
    }
}

/// Columns of up to [`CHUNK_ROWS`] rows, in [`Table::Events`]' column order.
struct Chunk {
    recorded_at: TimestampMillisecondBuilder,
    ledger_index: UInt64Builder,
    /// class, category, activity.
    ids: [UInt32Builder; 3],
    type_uid: UInt64Builder,
    time: TimestampMillisecondBuilder,
    observed_time: TimestampMillisecondBuilder,
    severity_id: UInt8Builder,
    status_id: UInt8Builder,
    action_id: UInt8Builder,
    message: StringBuilder,
    /// user, credential, person.
    actor: [StringBuilder; 3],
    src: EndpointColumns,
    dst: EndpointColumns,
    /// asset, hostname, ip, kind, vendor, model.
    device: [StringBuilder; 6],
    /// zone, door, area, protocol.
    place: [StringBuilder; 4],
    ot_function_code: UInt16Builder,
    ot_function: StringBuilder,
    ot_unit_id: UInt16Builder,
    ot_address: UInt32Builder,
    ot_access: StringBuilder,
    /// uid, title, category.
    finding: [StringBuilder; 3],
    /// backup, compared with, result.
    change: [StringBuilder; 3],
    changed_files: ListBuilder<StringBuilder>,
    /// previous backup, previous result.
    change_previous: [StringBuilder; 2],
    changed_since_previous: ListBuilder<StringBuilder>,
    /// product, vendor, version, source, parser.
    metadata: [StringBuilder; 5],
    unmapped: StringBuilder,
    raw: BinaryBuilder,
}

impl Default for Chunk {
    /// Columns that start small: most partitions hold few rows.
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Chunk {
    fn with_capacity(rows: usize) -> Self {
        Self {
            recorded_at: timestamps(rows),
            ledger_index: UInt64Builder::with_capacity(rows),
            ids: std::array::from_fn(|_| UInt32Builder::with_capacity(rows)),
            type_uid: UInt64Builder::with_capacity(rows),
            time: timestamps(rows),
            observed_time: timestamps(rows),
            severity_id: UInt8Builder::with_capacity(rows),
            status_id: UInt8Builder::with_capacity(rows),
            action_id: UInt8Builder::with_capacity(rows),
            message: StringBuilder::with_capacity(rows, rows * 64),
            actor: texts(rows),
            src: EndpointColumns::with_capacity(rows),
            dst: EndpointColumns::with_capacity(rows),
            device: texts(rows),
            place: texts(rows),
            ot_function_code: UInt16Builder::with_capacity(rows),
            ot_function: strings(rows),
            ot_unit_id: UInt16Builder::with_capacity(rows),
            ot_address: UInt32Builder::with_capacity(rows),
            ot_access: strings(rows),
            finding: texts(rows),
            change: texts(rows),
            changed_files: ListBuilder::with_capacity(StringBuilder::new(), rows),
            change_previous: texts(rows),
            changed_since_previous: ListBuilder::with_capacity(StringBuilder::new(), rows),
            metadata: texts(rows),
            unmapped: strings(rows),
            raw: BinaryBuilder::with_capacity(rows, rows * 256),
        }
    }

    fn append(&mut self, index: u64, recorded_at: i64, e: &Event, unmapped: Option<&str>) {
        self.recorded_at.append_value(recorded_at);
        self.ledger_index.append_value(index);
        for (b, v) in self.ids.iter_mut().zip([e.class_uid, e.category_uid, e.activity_id]) {
            b.append_value(v);
        }
        self.type_uid.append_value(e.type_uid);
        self.time.append_value(e.time);
        self.observed_time.append_value(e.observed_time);
        self.severity_id.append_value(e.severity_id);
        self.status_id.append_option(e.status_id);
        self.action_id.append_option(e.action_id);
        self.message.append_value(&e.message);
        let a = e.actor.as_ref();
        let [user, credential, person] = &mut self.actor;
        text(user, a.and_then(|a| a.user.as_deref()));
        text(credential, a.and_then(|a| a.credential_uid.as_deref()));
        text(person, a.and_then(|a| a.person.as_deref()));
        self.src.append(e.src.as_ref());
        self.dst.append(e.dst.as_ref());
        let d = e.device.as_ref();
        let [asset, hostname, address, kind, vendor, model] = &mut self.device;
        text(asset, d.and_then(|d| d.asset.as_deref()));
        text(hostname, d.and_then(|d| d.hostname.as_deref()));
        ip(address, d.and_then(|d| d.ip));
        text(kind, d.and_then(|d| d.kind.as_deref()));
        text(vendor, d.and_then(|d| d.vendor.as_deref()));
        text(model, d.and_then(|d| d.model.as_deref()));
        for (b, v) in self.place.iter_mut().zip([&e.zone, &e.door, &e.area, &e.protocol]) {
            text(b, v.as_deref());
        }
        let ot = e.ot.as_ref();
        self.ot_function_code.append_option(ot.and_then(|o| o.function_code));
        text(&mut self.ot_function, ot.and_then(|o| o.function.as_deref()));
        self.ot_unit_id.append_option(ot.and_then(|o| o.unit_id));
        self.ot_address.append_option(ot.and_then(|o| o.address));
        let access = ot.map(|o| match o.access {
            OtAccess::Read => "read",
            OtAccess::Write => "write",
            OtAccess::Other => "other",
        });
        text(&mut self.ot_access, access);
        let f = e.finding.as_ref();
        let [uid, title, category] = &mut self.finding;
        text(uid, f.and_then(|f| f.uid.as_deref()));
        text(title, f.map(|f| f.title.as_str()));
        text(category, f.and_then(|f| f.category.as_deref()));
        let c = e.change.as_deref();
        let [backup, compared_with, result] = &mut self.change;
        text(backup, c.map(|c| c.backup.as_str()));
        text(compared_with, c.map(|c| c.compared_with.as_str()));
        text(result, c.map(|c| c.result.as_str()));
        list(&mut self.changed_files, c.map(|c| c.changed_files.as_slice()));
        let [previous_backup, previous_result] = &mut self.change_previous;
        text(previous_backup, c.and_then(|c| c.previous_backup.as_deref()));
        text(previous_result, c.and_then(|c| c.previous_result.as_deref()));
        list(&mut self.changed_since_previous, c.map(|c| c.changed_since_previous.as_slice()));
        let m = &e.metadata;
        let [product, vendor, version, source, parser] = &mut self.metadata;
        product.append_value(&m.product);
        text(vendor, m.vendor.as_deref());
        text(version, m.version.as_deref());
        source.append_value(&m.source);
        parser.append_value(&m.parser);
        match unmapped {
            Some(json) => self.unmapped.append_value(json),
            None if e.unmapped.is_empty() => self.unmapped.append_null(),
            None => self.unmapped.append_value(serde_json::to_string(&e.unmapped).unwrap_or_default()),
        }
        self.raw.append_value(&e.raw.0);
    }

    /// The rows as one batch of [`Table::Events`]' schema.
    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut out: Vec<ArrayRef> = Vec::with_capacity(60);
        let mut take = |b: &mut dyn ArrayBuilder| out.push(b.finish());
        take(&mut self.recorded_at);
        take(&mut self.ledger_index);
        self.ids.iter_mut().for_each(|b| take(b));
        take(&mut self.type_uid);
        take(&mut self.time);
        take(&mut self.observed_time);
        take(&mut self.severity_id);
        take(&mut self.status_id);
        take(&mut self.action_id);
        take(&mut self.message);
        self.actor.iter_mut().for_each(|b| take(b));
        self.src.finish(&mut take);
        self.dst.finish(&mut take);
        self.device.iter_mut().chain(&mut self.place).for_each(|b| take(b));
        take(&mut self.ot_function_code);
        take(&mut self.ot_function);
        take(&mut self.ot_unit_id);
        take(&mut self.ot_address);
        take(&mut self.ot_access);
        self.finding.iter_mut().chain(&mut self.change).for_each(|b| take(b));
        take(&mut self.changed_files);
        self.change_previous.iter_mut().for_each(|b| take(b));
        take(&mut self.changed_since_previous);
        self.metadata.iter_mut().for_each(|b| take(b));
        take(&mut self.unmapped);
        take(&mut self.raw);
        RecordBatch::try_new(Table::Events.schema(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::display::array_value_to_string;
    use ingest::event::{Actor, ConfigChange, Device, EventClass, Finding, OtOperation};
    use serde_json::Value;

    /// An event with every field set to a value no other field has.
    fn full_event() -> Event {
        let mut e = Event::new(EventClass::DeviceConfigStateChange, 2, 1_700_000_000_001, 1_700_000_000_002, b"raw");
        e.status_id = Some(3);
        e.action_id = Some(4);
        e.severity_id = 5;
        e.message = "m".into();
        e.actor = Some(Actor { user: Some("u".into()), credential_uid: Some("c".into()), person: Some("p".into()) });
        let ep = |n: u8| Endpoint {
            ip: Some(IpAddr::from([10, 0, 0, n])),
            port: Some(u16::from(n) * 100),
            mac: Some(format!("mac{n}").into()),
            hostname: Some(format!("host{n}").into()),
            asset: Some(format!("asset{n}").into()),
            zone: Some(format!("zone{n}").into()),
        };
        e.src = Some(ep(1));
        e.dst = Some(ep(2));
        e.device = Some(Device {
            asset: Some("dasset".into()),
            hostname: Some("dhost".into()),
            ip: Some(IpAddr::from([10, 0, 0, 3])),
            kind: Some("plc".into()),
            vendor: Some("dvendor".into()),
            model: Some("dmodel".into()),
        });
        e.zone = Some("z".into());
        e.door = Some("door".into());
        e.area = Some("area".into());
        e.protocol = Some("modbus".into());
        e.ot = Some(OtOperation {
            function_code: Some(6),
            function: Some("write".into()),
            unit_id: Some(7),
            address: Some(40001),
            access: OtAccess::Write,
        });
        e.finding = Some(Finding { uid: Some("fu".into()), title: "ft".into(), category: Some("fc".into()) });
        e.change = Some(Box::new(ConfigChange {
            backup: "b2".into(),
            compared_with: "released".into(),
            result: "different".into(),
            changed_files: vec!["OB1".into()],
            previous_backup: Some("b1".into()),
            previous_result: Some("equal".into()),
            changed_since_previous: vec!["FC2".into()],
        }));
        e.metadata.product = "prod".into();
        e.metadata.vendor = Some("vend".into());
        e.metadata.version = Some("1.0".into());
        e.metadata.source = "src".into();
        e.metadata.parser = "parser".into();
        e.unmapped.insert("extra", "x");
        e
    }

    /// Every column holds the value of the event field it is named after
    /// (`src_ip` ← `src.ip`), so a column can never swap with a neighbour.
    #[test]
    fn each_column_holds_its_field() {
        let e = full_event();
        let mut cols = EventColumns::default();
        cols.append(9, 1_700_000_000_003, &e, None);
        cols.append(10, 1_700_000_000_004, &Event::new(EventClass::Authentication, 1, 5, 6, b"\xff"), None);
        let batches = cols.finish().expect("batch");
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 2);
        let json = serde_json::to_value(&e).expect("json");
        let expected = |column: &str| -> Option<String> {
            let v = match column {
                "recorded_at" => return Some("2023-11-14T22:13:20.003Z".into()),
                "ledger_index" => return Some("9".into()),
                "raw" => return Some(hex::encode(b"raw")),
                "unmapped" => return Some(json["unmapped"].to_string()),
                _ => json.get(column).cloned().or_else(|| {
                    let (outer, inner) = column.split_once('_')?;
                    json.get(outer)?.get(inner).cloned()
                })?,
            };
            Some(match v {
                Value::String(s) => s,
                Value::Array(items) => {
                    format!("[{}]", items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                }
                other => other.to_string(),
            })
        };
        for (i, field) in batch.schema().fields().iter().enumerate() {
            let got = array_value_to_string(batch.column(i), 0).expect("display");
            let name = field.name().as_str();
            let want = match name {
                "time" => "2023-11-14T22:13:20.001Z".to_owned(),
                "observed_time" => "2023-11-14T22:13:20.002Z".to_owned(),
                _ => expected(name).unwrap_or_else(|| panic!("no event field for column {name}")),
            };
            assert_eq!(got, want, "column {name}");
        }
        // The second row's absent parts are nulls, and raw bytes stay bytes.
        let row2 = |name: &str| batch.column(batch.schema().index_of(name).expect("column")).is_null(1);
        assert!(row2("src_ip") && row2("unmapped") && row2("change_changed_files"));
        assert_eq!(array_value_to_string(batch.column_by_name("raw").expect("raw"), 1).expect("raw"), "ff");
    }

    #[test]
    fn a_large_partition_is_built_in_chunks_in_order() {
        let mut cols = EventColumns::default();
        let rows = 2 * CHUNK_ROWS + 5;
        for i in 0..rows as u64 {
            cols.append(i, 7, &Event::new(EventClass::Authentication, 1, i as i64, i as i64, b"r"), None);
        }
        let batches = cols.finish().expect("batches");
        assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [CHUNK_ROWS, CHUNK_ROWS, 5]);
        let indexes: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let column = b.column_by_name("ledger_index").expect("ledger_index").clone();
                (0..b.num_rows()).map(move |r| array_value_to_string(&column, r).expect("display"))
            })
            .collect();
        assert_eq!(indexes, (0..rows).map(|i| i.to_string()).collect::<Vec<_>>(), "every row once, in order");
    }

    #[test]
    fn dotted_addresses_read_as_display_writes_them() {
        for o in 0..=255u8 {
            for v4 in [[o, 0, 9, 10], [99, o, 100, 255], [1, 200, o, o], [o, o, o, o]] {
                let v4 = std::net::Ipv4Addr::from(v4);
                assert_eq!(dotted(v4, &mut [0; 15]), v4.to_string());
            }
        }
    }
}
