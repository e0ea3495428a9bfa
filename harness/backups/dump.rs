//! The key dump file: every key under a prefix with its value, read at one revision, as JSON
//! (what etcd-backup's `dump.json` holds, for the keys of etcd's v3 API).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a dump or one of its entries could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// A `key_hex` or `value_hex` that is not hex.
    #[error("the {what} `{hex}` is not hex")]
    NotHex {
        /// `key` or `value`.
        what: &'static str,
        /// What was written.
        hex: String,
    },
    /// An entry with both or neither of the text and the hex form.
    #[error("an entry needs exactly one of `{what}` and `{what}_hex`")]
    TextOrHex {
        /// `key` or `value`.
        what: &'static str,
    },
    /// Encoding the dump as JSON failed.
    #[error("failed to encode the dump: {0}")]
    Encode(serde_json::Error),
    /// A file or directory could not be made, written or read.
    #[error("failed to {action} {}: {source}", .path.display())]
    File {
        /// `create`, `write` or `read`.
        action: &'static str,
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a dump.
    #[error("failed to parse {}: {source}", .path.display())]
    Parse {
        /// Which.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

impl From<DumpError> for String {
    fn from(e: DumpError) -> Self {
        e.to_string()
    }
}

fn file_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DumpError {
    let path = path.to_path_buf();
    move |source| DumpError::File {
        action,
        path,
        source,
    }
}

/// One key and its value; bytes that are not UTF-8 are written as hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpEntry {
    /// The key, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key in hex, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hex: Option<String>,
    /// The value, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in hex, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
}

/// A dump of the keys under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    /// The prefix dumped.
    pub prefix: String,
    /// The revision every key was read at.
    pub revision: i64,
    /// The member it was read from.
    pub through: String,
    /// When (RFC 3339).
    pub taken_at: String,
    /// Every key, in key order.
    pub keys: Vec<DumpEntry>,
}

fn text_or_hex(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_string()), None),
        Err(_) => (
            None,
            Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    }
}

fn bytes_of(
    text: &Option<String>,
    hex: &Option<String>,
    what: &'static str,
) -> Result<Vec<u8>, DumpError> {
    let not_hex = |h: &String| DumpError::NotHex {
        what,
        hex: h.clone(),
    };
    match (text, hex) {
        (Some(t), None) => Ok(t.as_bytes().to_vec()),
        (None, Some(h)) if h.len() % 2 == 0 => (0..h.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(h.get(i..i + 2).unwrap_or("zz"), 16).map_err(|_| not_hex(h))
            })
            .collect(),
        (None, Some(h)) => Err(not_hex(h)),
        _ => Err(DumpError::TextOrHex { what }),
    }
}

impl DumpEntry {
    /// An entry for a key and value as etcd holds them.
    pub fn new(key: &[u8], value: &[u8]) -> Self {
        let (key, key_hex) = text_or_hex(key);
        let (value, value_hex) = text_or_hex(value);
        Self {
            key,
            key_hex,
            value,
            value_hex,
        }
    }

    /// The key's bytes.
    pub fn key_bytes(&self) -> Result<Vec<u8>, DumpError> {
        bytes_of(&self.key, &self.key_hex, "key")
    }

    /// The value's bytes.
    pub fn value_bytes(&self) -> Result<Vec<u8>, DumpError> {
        bytes_of(&self.value, &self.value_hex, "value")
    }

    /// The key for messages.
    pub fn shown_key(&self) -> String {
        self.key
            .clone()
            .or_else(|| self.key_hex.as_ref().map(|h| format!("0x{h}")))
            .unwrap_or_default()
    }
}

impl Dump {
    /// Writes the dump as JSON.
    pub fn write(&self, path: &Path) -> Result<(), DumpError> {
        let json = serde_json::to_string_pretty(self).map_err(DumpError::Encode)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(file_error("create", dir))?;
        }
        std::fs::write(path, json + "\n").map_err(file_error("write", path))
    }

    /// Reads a dump written by `write`.
    pub fn read(path: &Path) -> Result<Self, DumpError> {
        let text = std::fs::read(path).map_err(file_error("read", path))?;
        serde_json::from_slice(&text).map_err(|source| DumpError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_any_bytes_and_the_file_round_trips() {
        let text = DumpEntry::new(
            b"/_coreos.com/fleet/machines/3f05",
            b"{\"ip\":\"10.0.0.1\"}",
        );
        assert_eq!(text.value.as_deref(), Some("{\"ip\":\"10.0.0.1\"}"));
        let binary = DumpEntry::new(b"/k", &[0xff, 0x00, 0x10]);
        assert_eq!(binary.value_hex.as_deref(), Some("ff0010"));
        assert_eq!(binary.value_bytes().unwrap(), vec![0xff, 0x00, 0x10]);
        assert_eq!(
            text.key_bytes().unwrap(),
            b"/_coreos.com/fleet/machines/3f05".to_vec()
        );
        let dump = Dump {
            prefix: "/_coreos.com/".into(),
            revision: 42,
            through: "quorum-1".into(),
            taken_at: "2026-11-21T12:00:00.000Z".into(),
            keys: vec![text, binary],
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dump.json");
        dump.write(&path).expect("write");
        assert_eq!(Dump::read(&path).expect("read"), dump);
        let bad = DumpEntry {
            key: Some("/k".into()),
            key_hex: None,
            value: None,
            value_hex: Some("f".into()),
        };
        assert!(bad.value_bytes().is_err());
    }
}
