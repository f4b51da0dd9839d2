//! Labelled corpora for `postern train` and `postern eval`: the labels file,
//! the deterministic train/test split, and the message as the default
//! scorer's feature extraction sees it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::message::ParsedMessage;

/// A label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Wanted mail.
    Ham,
    /// Spam.
    Spam,
}

/// One labelled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// File name as in the labels file.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Its label.
    pub label: Label,
}

/// Which side of the split to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Messages outside the held-out fraction.
    Train,
    /// The held-out fraction.
    Test,
}

/// Why a corpus cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The labels file cannot be read or parsed.
    #[error("labels {path}: {message}")]
    Labels {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the line).
        message: String,
    },
}

/// Reads `filename,label[,…]` rows (a header row is skipped); labels are
/// `ham` or `spam`. Files are looked up in `dir`.
pub fn read_labels(dir: &Path, labels: &Path) -> Result<Vec<Example>, CorpusError> {
    let err = |message: String| CorpusError::Labels { path: labels.to_path_buf(), message };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(labels)
        .map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| err(e.to_string()))?;
        let (name, label) = (row.get(0).unwrap_or("").trim(), row.get(1).unwrap_or("").trim());
        if i == 0 && name.eq_ignore_ascii_case("filename") {
            continue;
        }
        let label = match label.to_ascii_lowercase().as_str() {
            "ham" => Label::Ham,
            "spam" => Label::Spam,
            other => return Err(err(format!("line {}: label `{other}` is not ham or spam", i + 1))),
        };
        if name.is_empty() || name.contains("..") {
            return Err(err(format!("line {}: bad file name `{name}`", i + 1)));
        }
        out.push(Example { name: name.to_string(), path: dir.join(name), label });
    }
    if out.is_empty() {
        return Err(err("no labelled messages".into()));
    }
    Ok(out)
}

/// True when `name` falls in the held-out fraction for `seed`.
pub fn held_out(name: &str, holdout: f64, seed: u64) -> bool {
    let digest = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(name.as_bytes()).finalize();
    let x = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
    (x as f64 / u64::MAX as f64) < holdout
}

/// The examples of one side of the split (all of them when `holdout` is 0).
pub fn select(examples: Vec<Example>, holdout: f64, seed: u64, part: Part) -> Vec<Example> {
    if holdout <= 0.0 {
        return examples;
    }
    examples.into_iter().filter(|e| held_out(&e.name, holdout, seed) == (part == Part::Test)).collect()
}

/// The message as the SDK's types state it (for the scorer's feature
/// extraction, run natively by `train`).
pub fn sdk_message(m: &ParsedMessage) -> postern_policy_sdk::MessageData {
    use postern_policy_sdk as sdk;
    let addrs = |list: &[crate::runtime::types::Address]| -> Vec<sdk::Address> {
        list.iter().map(|a| sdk::Address { name: a.name.clone(), address: a.address.clone() }).collect()
    };
    sdk::MessageData {
        headers: m.headers.iter().map(|h| sdk::Header { name: h.name.clone(), value: h.value.clone() }).collect(),
        from: addrs(&m.from),
        to: addrs(&m.to),
        cc: addrs(&m.cc),
        reply_to: addrs(&m.reply_to),
        subject: m.subject.clone(),
        message_id: m.message_id.clone(),
        text_body: m.text_body.clone(),
        html_body: m.html_body.clone(),
        html_text: m.html_text.clone(),
        attachments: m
            .attachments
            .iter()
            .map(|a| sdk::Attachment {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.size,
                inline: a.inline,
            })
            .collect(),
        links: m
            .links
            .iter()
            .map(|l| sdk::Link { url: l.url.clone(), domain: l.domain.clone(), text: l.text.clone() })
            .collect(),
        size: m.size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_near_the_fraction() {
        let names: Vec<String> = (0..2000).map(|i| format!("dev-{i:05}.eml")).collect();
        let test = names.iter().filter(|n| held_out(n, 0.4, 1)).count();
        assert!((700..900).contains(&test), "{test} of 2000 held out");
        assert_eq!(test, names.iter().filter(|n| held_out(n, 0.4, 1)).count());
        let other_seed = names.iter().filter(|n| held_out(n, 0.4, 2)).count();
        assert_ne!(
            names.iter().filter(|n| held_out(n, 0.4, 1)).collect::<Vec<_>>(),
            names.iter().filter(|n| held_out(n, 0.4, 2)).collect::<Vec<_>>(),
            "{other_seed}"
        );
    }

    #[test]
    fn labels_file_parsing() {
        let dir = std::env::temp_dir().join(format!("postern-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.csv");
        std::fs::write(&path, "filename,label,source\na.eml,ham,x\nb.eml,SPAM,y\n").unwrap();
        let ex = read_labels(&dir, &path).unwrap();
        assert_eq!((ex.len(), ex[1].label), (2, Label::Spam));
        std::fs::write(&path, "a.eml,maybe\n").unwrap();
        assert!(read_labels(&dir, &path).unwrap_err().to_string().contains("maybe"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
