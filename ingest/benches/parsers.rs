//! One benchmark per parser: a representative record parsed from bytes into an
//! event (`parse/…`), and the same through the normaliser with enrichment
//! against the demo inventory (`normalize/…`). Throughput is in records.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingest::parse::ParseContext;
use ingest::{Format, Inventory, Normalizer, RawRecord};

/// The allocator the `custos` binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const INVENTORY: &str = include_str!("../fixtures/inventory.toml");

/// Name, format, record, file header.
type Case = (&'static str, Format, Vec<u8>, Option<&'static [u8]>);

fn cases() -> Vec<Case> {
    let zeek_header: &'static [u8] = b"#separator \\x09\n#path\tmodbus\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tfunc\texception\n#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\n";
    vec![
        ("syslog-fortigate-kv", Format::Syslog, br#"<189>1 2026-11-26T10:00:00Z fgt-cell1 - - - - date=2026-11-26 time=10:00:00 devname="FGT-CELL1" devid="FG100FTK20000001" eventtime=1795687200000000000 tz="+0000" logid="0000000013" type="traffic" subtype="forward" level="notice" srcip=10.10.1.30 srcport=40001 dstip=10.10.1.10 dstport=502 proto=6 action="accept" policyid=12 service="Modbus" sentbyte=180 rcvdbyte=96"#.to_vec(), None),
        ("syslog-cef", Format::Syslog, b"<14>Nov 26 10:00:02 ews-01 win: CEF:0|Microsoft|Microsoft Windows|10.0|4624|An account was successfully logged on|3|rt=1795687202000 duser=alice dhost=ews-01 dst=10.10.1.20 src=10.10.1.20 cs2Label=LogonType cs2=2".to_vec(), None),
        ("syslog-5424-text", Format::Syslog, b"<134>1 2026-11-26T10:00:00.003Z ews-01 sshd 2211 - - Accepted publickey for alice from 10.10.1.20 port 50122 ssh2".to_vec(), None),
        ("syslog-leef", Format::Syslog, b"<13>1 2026-11-26T10:00:04Z qradar - - - - LEEF:2.0|Lancope|StealthWatch|1.0|41|x5E|src=10.10.1.50^dst=10.10.1.10^dstPort=502^proto=tcp^action=block".to_vec(), None),
        ("syslog-netfilter", Format::Syslog, b"<4>Nov 26 10:00:07 gw kernel: DROP-IN: IN=eth1 OUT= MAC=00:1b:21:3a:4b:5c:00:1c:7f:11:22:33:08:00 SRC=10.20.0.5 DST=10.10.1.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=54321 DF PROTO=TCP SPT=51515 DPT=502 WINDOW=29200 RES=0x00 SYN URGP=0".to_vec(), None),
        ("syslog-filterlog", Format::Syslog, b"<134>Nov 26 10:00:09 pfsense filterlog[1234]: 5,,,1000000103,em0,match,block,in,4,0x0,,64,12345,0,DF,6,tcp,60,10.20.0.5,10.10.1.10,51515,502,0,S,1234567,,64240,,mss".to_vec(), None),
        ("syslog-panos", Format::Syslog, b"<14>1 2026-11-26T10:00:12Z pa-fw - - - - 1,2026/11/26 10:00:12,012801000001,TRAFFIC,end,2561,2026/11/26 10:00:12,10.20.0.5,10.10.1.10,0.0.0.0,0.0.0.0,it-to-ot,,,modbus,vsys1,it,ot-cell1,ethernet1/1,ethernet1/2,log-fwd,2026/11/26 10:00:12,33333,1,51515,502,0,0,0x19,tcp,allow,1200,600,600,12,2026/11/26 10:00:02,10,\"industrial-control, scada\",0".to_vec(), None),
        ("syslog-asa", Format::Syslog, b"<164>Nov 26 10:00:14 asa01 %ASA-4-106023: Deny tcp src outside:10.20.0.5/51515 dst inside:10.10.1.10/502 by access-group \"outside_in\" [0x0, 0x0]".to_vec(), None),
        ("suricata-eve-modbus", Format::SuricataEve, br#"{"timestamp":"2026-11-26T10:00:03.000000+0000","flow_id":3,"event_type":"modbus","src_ip":"10.10.1.50","src_port":50200,"dest_ip":"10.10.1.10","dest_port":502,"proto":"TCP","modbus":{"id":1,"request":{"transaction_id":1,"protocol_id":0,"unit_id":1,"function_raw":16,"function_code":"WriteMultipleRegisters","access_type":"WRITE | HOLDING","category":"PUBLIC_ASSIGNED","error_flags":"NONE","write":{"address":40023,"quantity":2,"data":[1,2]}}}}"#.to_vec(), None),
        ("suricata-eve-alert", Format::SuricataEve, br#"{"timestamp":"2026-11-26T10:00:00.532140+0000","flow_id":1,"in_iface":"eth0","event_type":"alert","src_ip":"10.20.0.5","src_port":51515,"dest_ip":"10.10.1.10","dest_port":502,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2100100,"rev":1,"signature":"ET SCADA Modbus write from non-engineering host","category":"Attempted Administrator Privilege Gain","severity":1}}"#.to_vec(), None),
        ("zeek-tsv-modbus", Format::ZeekTsv, b"1795687202.000000\tCb1\t10.10.1.50\t50200\t10.10.1.10\t502\tWRITE_SINGLE_REGISTER\t-".to_vec(), Some(zeek_header)),
        ("badge-json", Format::BadgeJson, br#"{"time":"2026-11-26T10:00:00Z","badge":"4711","door":"CR-DOOR-1","result":"denied","reason":"not authorised for area","direction":"in","controller":"PACS-GW-1"}"#.to_vec(), None),
    ]
}

fn bench(c: &mut Criterion) {
    let inventory = Arc::new(Inventory::from_toml(INVENTORY).expect("inventory"));
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, format, line, header) in cases() {
        let ctx = ParseContext { header, ..ParseContext::new("bench", 1_795_687_260_000) };
        assert!(format.parse(&line, &ctx).is_ok(), "{name} must parse");
        g.bench_function(name, |b| b.iter(|| format.parse(std::hint::black_box(&line), &ctx)));
    }
    g.finish();
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(1));
    for (name, format, line, header) in cases() {
        let mut n = Normalizer::new(inventory.clone(), 0);
        let header: Option<Arc<[u8]>> = header.map(Arc::from);
        let source: Arc<str> = "bench".into();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut raw = RawRecord::new(source.clone(), format, 1_795_687_260_000, line.clone());
                raw.header.clone_from(&header);
                n.normalize(raw)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
