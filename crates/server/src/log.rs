//! The binary's logs on stderr: tracing-subscriber's text lines (the default), or one JSON
//! object per line for a machine (`--log-format json`):
//! `{"time":"…Z","level":"WARN","event":"client certificate refused","target":"…","fields":{…}}`.
//! The access log (target `access`) and the refusal lines are events like any other.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: `time`, `level`, `event`, `target`, `fields`.
    Json,
}

/// Installs the global subscriber: `RUST_LOG` if set, else `default_filter`; stderr.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.event_format(JsonLines).init(),
    }
}

/// The JSON line format.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(writer, "{}", to_json(event))
    }
}

/// The object of one event.
pub fn to_json(event: &Event<'_>) -> Value {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut line = Map::new();
    line.insert("time".into(), time.into());
    line.insert("level".into(), meta.level().as_str().into());
    // An event without a message (the access log's) is named by its target.
    let name = fields.message.unwrap_or_else(|| meta.target().to_owned());
    line.insert("event".into(), name.into());
    line.insert("target".into(), meta.target().into());
    line.insert("fields".into(), Value::Object(fields.map));
    Value::Object(line)
}

/// An event's fields as JSON values, its `message` apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    map: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.map.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_object_with_time_level_event_and_fields() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(client = %"/CN=x", depth = 0, reason = "expired", "client certificate refused");
            tracing::info!(target: "access", status = 200u16, path = "/whoami");
        });
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["event"], "client certificate refused");
        assert_eq!(lines[0]["fields"]["client"], "/CN=x");
        assert_eq!(lines[0]["fields"]["depth"], 0);
        assert!(
            lines[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{text}"
        );
        assert_eq!(lines[1]["event"], "access");
        assert_eq!(lines[1]["fields"]["status"], 200);
    }
}
