//! One JSON object per line, written straight into the line buffer.
//!
//! The same shape as tracing-subscriber's `.json().flatten_event(true)` (timestamp, level, the
//! event's fields and message at the top level, target), so log queries keep working. That
//! formatter drives serde through an `io::Write` adaptor that checks UTF-8 on each small write;
//! at saturation its line cost 4 µs of a patched admission's 40 (docs/performance.md). Here
//! each field is escaped and appended in place. Spans are not logged: the webhook opens none.

use std::fmt::{self, Write as _};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The event formatter for `--log-format json`.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _cx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// The notice of dropped lines (`batch::Notice`) as a JSON line.
pub fn dropped_notice(out: &mut dyn std::io::Write, dropped: u64) -> std::io::Result<()> {
    let mut line = String::from("{\"timestamp\":\"");
    let _ = SystemTime.format_time(&mut Writer::new(&mut line));
    let _ = writeln!(
        line,
        "\",\"level\":\"WARN\",\"message\":\"log lines dropped: the log output did not keep up\",\
         \"dropped\":{dropped},\"target\":\"{}\"}}",
        module_path!()
    );
    out.write_all(line.as_bytes())
}

/// Appends each field as `,"name":value`.
struct Fields<'a, W> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: fmt::Write> Fields<'_, W> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_char(',')?;
                string(self.out, field.name())?;
                self.out.write_char(':')?;
                value(self.out)
            })();
        }
    }
}

impl<W: fmt::Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |out| string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes null for them too.
        if value.is_finite() {
            self.entry(field, |out| write!(out, "{value}"));
        } else {
            self.entry(field, |out| out.write_str("null"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }
}

/// `text` as a JSON string.
fn string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what is written through it for the inside of a JSON string (RFC 8259 section 7):
/// the quote, the backslash and the control characters; everything else is copied in runs.
struct Escaped<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        string(&mut out, text).unwrap();
        out
    }

    #[test]
    fn strings_read_back_as_written() {
        let mut every_ascii: String = (0u8..0x80).map(char::from).collect();
        every_ascii.push_str("é 漢字 🚀 \u{2028} \u{7f}");
        for text in [
            "",
            "plain",
            "\"quoted\"",
            "back\\slash",
            "a\nb\r\tc",
            every_ascii.as_str(),
        ] {
            let written = escaped(text);
            let read: String = serde_json::from_str(&written)
                .unwrap_or_else(|e| panic!("{written:?} is no JSON string: {e}"));
            assert_eq!(read, text);
        }
    }

    #[test]
    fn the_dropped_notice_is_a_json_line_too() {
        let mut out = Vec::new();
        dropped_notice(&mut out, 7).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let notice: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(notice["level"], "WARN");
        assert_eq!(notice["dropped"], 7);
        assert!(
            notice["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }

    #[test]
    fn an_event_is_one_json_line_with_every_field_at_the_top() {
        let lines = crate::logging::Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer({
                let lines = lines.clone();
                move || lines.clone()
            })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let error = std::io::Error::other("disk \"full\"");
            tracing::info!(
                uid = "a-1",
                name = %"reviews",
                skipped = ?["FG101", "FG102"],
                count = 3u64,
                delta = -2i64,
                ok = true,
                ratio = 0.5f64,
                nan = f64::NAN,
                error = &error as &(dyn std::error::Error + 'static),
                "reviewed\nline"
            );
            tracing::warn!("second");
        });
        let text = lines.text();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        assert_eq!(events.len(), 2, "{text}");
        let first = &events[0];
        assert!(
            first["timestamp"]
                .as_str()
                .is_some_and(|t| t.len() > 19 && t.ends_with('Z')),
            "{first}"
        );
        let mut rest = first.clone();
        rest.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(
            rest,
            json!({
                "level": "INFO",
                "uid": "a-1",
                "name": "reviews",
                "skipped": "[\"FG101\", \"FG102\"]",
                "count": 3,
                "delta": -2,
                "ok": true,
                "ratio": 0.5,
                "nan": null,
                "error": "disk \"full\"",
                "message": "reviewed\nline",
                "target": module_path!(),
            })
        );
        assert_eq!(events[1]["level"], "WARN");
        assert_eq!(events[1]["message"], "second");
    }
}
