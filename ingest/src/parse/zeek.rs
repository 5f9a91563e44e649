//! Zeek logs, TSV (read through the file's own `#separator`, `#fields`, `#types`
//! header, whatever the Zeek version) and JSON: `conn`, `modbus`, `dnp3`, and the
//! CISA ICSNPP `s7comm`, `s7comm_upload_download`, `enip` and `cip` logs.

use crate::event::Text;
use serde_json::{Map, Value};

use super::{ParseContext, ParseError};
use crate::event::{Event, EventClass, Finding, OtAccess, OtOperation, activity, severity};
use crate::time::parse_rfc3339;

const P: &str = "zeek";

fn err(reason: impl Into<String>) -> ParseError {
    ParseError::new(P, reason)
}

/// A TSV log's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub separator: String,
    pub set_separator: String,
    pub empty_field: String,
    pub unset_field: String,
    pub path: Option<String>,
    pub fields: Vec<String>,
    pub types: Vec<String>,
}

/// Reads `\x09`-style escapes in `#separator`.
fn unescape_sep(s: &str) -> String {
    if let Some(hex) = s.strip_prefix("\\x")
        && let Ok(b) = u8::from_str_radix(hex, 16)
    {
        return (b as char).to_string();
    }
    s.to_owned()
}

/// Parses the `#` lines at the top of a TSV log.
pub fn parse_header(text: &[u8]) -> Result<Header, ParseError> {
    let text = std::str::from_utf8(text).map_err(|_| err("header is not UTF-8"))?;
    let mut h = Header {
        separator: "\t".into(),
        set_separator: ",".into(),
        empty_field: "(empty)".into(),
        unset_field: "-".into(),
        path: None,
        fields: Vec::new(),
        types: Vec::new(),
    };
    for line in text.lines() {
        if let Some(sep) = line.strip_prefix("#separator ") {
            h.separator = unescape_sep(sep.trim());
            continue;
        }
        let Some(rest) = line.strip_prefix('#') else { continue };
        let mut it = rest.split(h.separator.as_str());
        let key = it.next().unwrap_or("");
        let values: Vec<String> = it.map(str::to_owned).collect();
        match key {
            "set_separator" => h.set_separator = values.first().cloned().unwrap_or_default(),
            "empty_field" => h.empty_field = values.first().cloned().unwrap_or_default(),
            "unset_field" => h.unset_field = values.first().cloned().unwrap_or_default(),
            "path" => h.path = values.first().cloned(),
            "fields" => h.fields = values,
            "types" => h.types = values,
            _ => {}
        }
    }
    if h.fields.is_empty() {
        return Err(err("no #fields line in the header"));
    }
    Ok(h)
}

fn typed(v: &str, ty: &str, h: &Header) -> Option<Value> {
    if v == h.unset_field {
        return None;
    }
    if v == h.empty_field {
        return Some(if ty.starts_with("set") || ty.starts_with("vector") {
            Value::Array(Vec::new())
        } else {
            Value::String(String::new())
        });
    }
    Some(match ty {
        "count" | "int" | "port" => v.parse::<i64>().map(Value::from).unwrap_or_else(|_| v.into()),
        "double" | "time" | "interval" => {
            v.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or_else(|| v.into())
        }
        "bool" => Value::Bool(v == "T"),
        t if t.starts_with("set") || t.starts_with("vector") => {
            Value::Array(v.split(h.set_separator.as_str()).map(Value::from).collect())
        }
        _ => v.into(),
    })
}

/// Parses one TSV data line with its file's header.
pub fn parse_tsv(line: &[u8], header: &Header, ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let text = std::str::from_utf8(line).map_err(|e| err(format!("not valid UTF-8 at byte {}", e.valid_up_to())))?;
    let values: Vec<&str> = text.split(header.separator.as_str()).collect();
    if values.len() != header.fields.len() {
        return Err(err(format!("{} fields, the #fields header names {}", values.len(), header.fields.len())));
    }
    let mut rec = Map::new();
    for (i, (name, v)) in header.fields.iter().zip(values).enumerate() {
        let ty = header.types.get(i).map_or("string", String::as_str);
        if let Some(val) = typed(v, ty, header) {
            rec.insert(name.clone(), val);
        }
    }
    map_record(header.path.as_deref(), rec, line, ctx)
}

/// Parses one JSON log line (`_path` names the log when present).
pub fn parse_json(line: &[u8], ctx: &ParseContext<'_>) -> Result<Event, ParseError> {
    let v: Value = serde_json::from_slice(line).map_err(|e| err(format!("not JSON: {e}")))?;
    let Value::Object(rec) = v else { return Err(err("record is not a JSON object")) };
    let path = rec.get("_path").and_then(Value::as_str).map(str::to_owned);
    map_record(path.as_deref(), rec, line, ctx)
}

/// Which log a record is, from its path or, failing that, its fields.
fn log_kind(path: Option<&str>, rec: &Map<String, Value>) -> String {
    if let Some(p) = path {
        return p.to_owned();
    }
    let has = |k: &str| rec.contains_key(k);
    let kind = if has("conn_state") {
        "conn"
    } else if has("fc_request") || has("fc_reply") {
        "dnp3"
    } else if has("block_type") && has("filename") {
        "s7comm_upload_download"
    } else if has("rosctr") {
        "s7comm"
    } else if has("cip_service") {
        "cip"
    } else if has("enip_command") {
        "enip"
    } else if has("func") {
        "modbus"
    } else {
        "unknown"
    };
    kind.to_owned()
}

fn access_from_name(name: &str) -> OtAccess {
    let n = name.to_ascii_lowercase();
    // An upload copies the program *from* the PLC ("Start upload"): a read, whatever else the name says.
    if n.contains("upload") {
        return OtAccess::Read;
    }
    if [
        "write",
        "download",
        "operate",
        "select",
        "set_attribute",
        "stop",
        "start",
        "restart",
        "delete",
        "insert",
        "plc control",
    ]
    .iter()
    .any(|w| n.contains(w))
    {
        OtAccess::Write
    } else if ["read", "get_attribute", "list"].iter().any(|w| n.contains(w)) {
        OtAccess::Read
    } else {
        OtAccess::Other
    }
}

/// S7comm job function codes (the protocol's fixed values), for logs that give only the code.
fn s7_function_name(code: &str) -> Option<&'static str> {
    let n = u8::from_str_radix(code.trim_start_matches("0x"), 16).ok()?;
    Some(match n {
        0x04 => "Read Var",
        0x05 => "Write Var",
        0x1a => "Request download",
        0x1b => "Download block",
        0x1c => "Download ended",
        0x1d => "Start upload",
        0x1e => "Upload",
        0x1f => "End upload",
        0x28 => "PLC Control",
        0x29 => "PLC Stop",
        0xf0 => "Setup communication",
        _ => return None,
    })
}

fn ts_millis(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| (f * 1000.0).round() as i64),
        Value::String(s) => s.parse::<f64>().ok().map(|f| (f * 1000.0).round() as i64).or_else(|| parse_rfc3339(s)),
        _ => None,
    }
}

fn map_record(
    path: Option<&str>,
    map: Map<String, Value>,
    raw: &[u8],
    ctx: &ParseContext<'_>,
) -> Result<Event, ParseError> {
    let rec = &map;
    let time = rec
        .get("ts")
        .ok_or_else(|| err("missing ts"))
        .and_then(|t| ts_millis(t).ok_or_else(|| err(format!("bad ts {t}"))))?;
    let kind = log_kind(path, rec);
    let s = |k: &str| rec.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let ip = |k: &str| s(k).and_then(crate::event::parse_ip);
    let port = |k: &str| rec.get(k).and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
    let class = if rec.contains_key("id.orig_h") { EventClass::NetworkActivity } else { EventClass::Base };
    let activity_id = match (class, kind.as_str()) {
        (EventClass::NetworkActivity, "conn") => activity::NET_CLOSE,
        (EventClass::NetworkActivity, _) => activity::NET_TRAFFIC,
        _ => activity::OTHER,
    };
    let mut e = Event::new(class, activity_id, time, ctx.received_at, raw);
    e.metadata.vendor = Some("Zeek".into());
    e.metadata.product = "Zeek".into();
    e.metadata.parser = format!("zeek/{kind}").into();
    e.src_mut().ip = ip("id.orig_h");
    e.src_mut().port = port("id.orig_p");
    e.dst_mut().ip = ip("id.resp_h");
    e.dst_mut().port = port("id.resp_p");
    let (function, protocol): (Option<&str>, &str) = match kind.as_str() {
        "conn" => (None, s("service").unwrap_or_else(|| s("proto").unwrap_or("ip"))),
        "modbus" | "modbus_detailed" => (s("func"), "modbus"),
        "dnp3" => (s("fc_request").or(s("fc_reply")), "dnp3"),
        "s7comm" | "s7comm_upload_download" => (
            s("function_name").or(s("subfunction_name")).or_else(|| s("function_code").and_then(s7_function_name)),
            "s7comm",
        ),
        "enip" => (s("enip_command"), "enip"),
        "cip" => (s("cip_service"), "cip"),
        _ => (None, s("proto").unwrap_or("unknown")),
    };
    e.protocol = Some(crate::event::ascii_lowercase(protocol));
    if let Some(f) = function {
        let op = OtOperation {
            function_code: rec
                .get("function_code")
                .or(rec.get("cip_service_code"))
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok()),
            function: Some(f.to_owned()),
            unit_id: rec.get("unit_id").or(rec.get("unit")).and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()),
            address: rec
                .get("track_address")
                .or(rec.get("address"))
                .and_then(Value::as_u64)
                .and_then(|c| u32::try_from(c).ok()),
            access: access_from_name(f),
        };
        e.message = crate::event::format_text!("{protocol} {f}");
        e.ot = Some(op);
    } else {
        e.message = crate::event::format_text!("{kind} {}", s("conn_state").unwrap_or(""));
        e.message = Text::from(e.message.trim());
    }
    if kind == "s7comm_upload_download" && e.ot.as_ref().is_some_and(|o| o.access == OtAccess::Write) {
        // A program block download seen on the wire: worth a finding of its own.
        e.severity_id = severity::MEDIUM;
        e.finding = Some(Finding {
            uid: None,
            title: "S7 program block download".into(),
            category: s("block_type").map(Text::from),
        });
    }
    if let Some(x) = s("exception").or(s("error_class")) {
        e.unmapped.insert("zeek.exception", x);
    }
    for (k, v) in map {
        if !matches!(k.as_str(), "ts" | "id.orig_h" | "id.orig_p" | "id.resp_h" | "id.resp_p") {
            e.unmapped.insert_prefixed("zeek.", &k, v);
        }
    }
    e.unmapped.insert("zeek.log", kind);
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: ParseContext<'static> = ParseContext::new("zeek", 1_795_000_000_000);

    const MODBUS_HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tmodbus\n#open\t2026-11-26-10-00-00\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tfunc\texception\n#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\n";

    #[test]
    fn tsv_modbus_write() {
        let h = parse_header(MODBUS_HEADER.as_bytes()).expect("header");
        assert_eq!(h.path.as_deref(), Some("modbus"));
        let e = parse_tsv(
            b"1795000000.250000\tCabc\t10.10.1.50\t50123\t10.10.1.10\t502\tWRITE_SINGLE_REGISTER\t-",
            &h,
            &CTX,
        )
        .expect("line");
        assert_eq!(e.time, 1_795_000_000_250);
        let ot = e.ot.expect("ot");
        assert_eq!((ot.access, ot.function.as_deref()), (OtAccess::Write, Some("WRITE_SINGLE_REGISTER")));
        assert_eq!(e.dst.and_then(|d| d.port), Some(502));
        assert!(!e.unmapped.contains_key("zeek.exception"), "unset fields stay unset");
        let bad = parse_tsv(b"1\t2", &h, &CTX).expect_err("short line");
        assert!(bad.reason.contains("2 fields, the #fields header names 8"), "{bad}");
    }

    #[test]
    fn json_logs_by_path_or_fields() {
        let s7 = br#"{"ts":"2026-11-26T10:00:00.000Z","uid":"C1","id.orig_h":"10.10.1.20","id.orig_p":49152,"id.resp_h":"10.10.1.10","id.resp_p":102,"rosctr":"Job","pdu_reference":3,"function_code":"0x1d","function_name":"Start upload","filename":"_0A00001P","block_type":"0A","block_number":"00001"}"#;
        let e = parse_json(s7, &CTX).expect("s7");
        assert_eq!(e.metadata.parser, "zeek/s7comm_upload_download");
        assert_eq!(e.ot.map(|o| o.access), Some(OtAccess::Read));
        let dl = br#"{"_path":"s7comm_upload_download","ts":1795000000.5,"id.orig_h":"10.10.1.20","id.resp_h":"10.10.1.10","function_name":"Request download","filename":"_0800001P","block_type":"08"}"#;
        let e = parse_json(dl, &CTX).expect("download");
        assert_eq!(e.ot.map(|o| o.access), Some(OtAccess::Write));
        assert!(e.finding.is_some());
        let conn = br#"{"ts":1795000000.0,"uid":"C2","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":2,"proto":"tcp","service":"modbus","conn_state":"SF"}"#;
        assert_eq!(parse_json(conn, &CTX).expect("conn").activity_id, activity::NET_CLOSE);
        assert!(parse_json(br#"{"uid":"x"}"#, &CTX).expect_err("no ts").reason.contains("missing ts"));
    }
}
