//! What each stage receives.

use std::cell::OnceCell;

use crate::{Authentication, Envelope, Message, Symbol, Workspace};

/// Input of a score policy.
#[derive(Debug)]
pub struct ScoreInput<'a> {
    /// The parsed message.
    pub message: Message<'a>,
    /// The SMTP envelope.
    pub envelope: Envelope,
    /// SPF, DKIM and DMARC results of the fixed checks.
    pub auth: Authentication,
    /// The workspace the message is for.
    pub workspace: Workspace,
    /// The policy's own configuration.
    pub config: Config,
}

/// Input of a threshold policy.
#[derive(Debug)]
pub struct ThresholdInput<'a> {
    /// The parsed message.
    pub message: Message<'a>,
    /// Total score: the sum of `symbols`.
    pub score: f64,
    /// Every symbol of the score stage.
    pub symbols: Vec<Symbol>,
    /// SPF, DKIM and DMARC results of the fixed checks.
    pub auth: Authentication,
    /// The workspace the message is for.
    pub workspace: Workspace,
    /// The policy's own configuration.
    pub config: Config,
}

/// Input of a route policy.
#[derive(Debug)]
pub struct RouteInput<'a> {
    /// The parsed message.
    pub message: Message<'a>,
    /// The SMTP envelope.
    pub envelope: Envelope,
    /// The workspace the message is for.
    pub workspace: Workspace,
    /// Total score of the message.
    pub score: f64,
    /// Every symbol of the score stage.
    pub symbols: Vec<Symbol>,
    /// The policy's own configuration.
    pub config: Config,
}

/// A policy's configuration: the `[config]` table of its manifest, as JSON,
/// and its data file (`data_file`), if any.
#[derive(Debug, Default)]
pub struct Config {
    raw: String,
    parsed: OnceCell<serde_json::Value>,
    data: OnceCell<Option<Vec<u8>>>,
}

impl Config {
    /// Configuration from its JSON text (an empty text is an empty table).
    pub fn from_json(raw: impl Into<String>) -> Self {
        Config { raw: raw.into(), parsed: OnceCell::new(), data: OnceCell::new() }
    }

    /// With a data file (for native tests; in a component the host provides
    /// it).
    pub fn with_data(self, data: Vec<u8>) -> Self {
        let cell = OnceCell::new();
        let _ = cell.set(Some(data));
        Config { data: cell, ..self }
    }

    /// The bytes of the data file at `offsets`, in order, without copying
    /// the whole file into the policy (at most 65536 offsets). `None` when
    /// there is no data file or an offset is past its end.
    pub fn data_at(&self, offsets: &[u32]) -> Option<Vec<u8>> {
        if offsets.len() > 65_536 {
            return None;
        }
        #[cfg(target_arch = "wasm32")]
        if self.data.get().is_none() {
            return crate::wit::postern::policy::types::config_data_gather(offsets);
        }
        let data = self.data()?;
        offsets.iter().map(|&o| data.get(o as usize).copied()).collect()
    }

    /// The policy's data file, fetched from the host on first use.
    pub fn data(&self) -> Option<&[u8]> {
        self.data
            .get_or_init(|| {
                #[cfg(target_arch = "wasm32")]
                {
                    crate::wit::postern::policy::types::config_data()
                }
                #[cfg(not(target_arch = "wasm32"))]
                {
                    None
                }
            })
            .as_deref()
    }

    /// The JSON text as the host passed it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The configuration as a JSON value (`null` when empty or not valid
    /// JSON; the host only ever passes valid JSON).
    pub fn value(&self) -> &serde_json::Value {
        self.parsed.get_or_init(|| serde_json::from_str(&self.raw).unwrap_or_default())
    }

    /// One top-level key.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.value().get(key)
    }

    /// A number at `key`, or `default` when absent or not a number.
    pub fn f64_or(&self, key: &str, default: f64) -> f64 {
        self.get(key).and_then(serde_json::Value::as_f64).unwrap_or(default)
    }

    /// A boolean at `key`, or `default`.
    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        self.get(key).and_then(serde_json::Value::as_bool).unwrap_or(default)
    }

    /// A string at `key`, or `default`.
    pub fn str_or<'s>(&'s self, key: &str, default: &'s str) -> &'s str {
        self.get(key).and_then(serde_json::Value::as_str).unwrap_or(default)
    }
}

impl Workspace {
    /// The value of a workspace setting, parsed from its JSON rendering.
    pub fn setting(&self, key: &str) -> Option<serde_json::Value> {
        let s = self.settings.iter().find(|s| s.key == key)?;
        serde_json::from_str(&s.value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_typed_values_with_defaults() {
        let c = Config::from_json(r#"{"dirty": 7.5, "strict": true, "inbox": "billing"}"#);
        assert_eq!(c.f64_or("dirty", 6.0), 7.5);
        assert_eq!(c.f64_or("junk", 3.0), 3.0);
        assert!(c.bool_or("strict", false));
        assert_eq!(c.str_or("inbox", "default"), "billing");
        assert_eq!(Config::from_json("").f64_or("dirty", 6.0), 6.0);
    }

    #[test]
    fn data_at_reads_single_bytes() {
        let c = Config::from_json("{}").with_data(vec![10, 20, 30]);
        assert_eq!(c.data_at(&[2, 0]), Some(vec![30, 10]));
        assert_eq!(c.data_at(&[]), Some(vec![]), "an empty read tells the file exists");
        assert_eq!(c.data_at(&[3]), None, "past the end");
        assert_eq!(Config::from_json("{}").data_at(&[]), None, "no data file");
    }

    #[test]
    fn workspace_setting_parses_json() {
        let ws = Workspace {
            settings: vec![crate::Setting { key: "vip".into(), value: "[\"a@b.test\"]".into() }],
            ..Default::default()
        };
        assert_eq!(ws.setting("vip"), Some(serde_json::json!(["a@b.test"])));
        assert_eq!(ws.setting("missing"), None);
    }
}
